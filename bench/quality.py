"""Quality experiments of NGDiff + AutoLR against the baselines, on every data set.

    python bench/quality.py run GRID [--root runs/quality] [--only TEXT]   # run (resumable)
    python bench/quality.py report GRID [--root runs/quality]              # tables + plots
    python bench/quality.py screens [--root runs/quality]                  # the screens, one table
    python bench/quality.py list                                           # the grids

A grid (:mod:`_quality_grids`) is a list of runs (data set, method, step size, base, lr,
seed, settings). ``run`` executes them in this process, one after the other, and writes each
finished run's record to ``ROOT/runs/<data set>/<label>-<key>.json`` (``key`` hashes the
settings), so an interrupted sweep resumes where it stopped and grids share runs. Target
models and held-out data are built on first use under ``ROOT/cache`` and ``ROOT/data``; at the
end, ``run`` builds the retrain reference (the retain-only model) of each data set that has
one (``muse-synthetic``), which ``report`` shows as a row of its table.
``report`` prints one table per data set (mean ± std over seeds), the README's quality
bar, and writes a trade-off plot per data set (forget metric vs retain metric) to
``ROOT/plots``. Run it with ``nice`` in the background: hours on 2 cores for the full grids.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _quality_grids import GRIDS
from _quality_run import Targets, execute


def _run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    only = [t for t in (args.only or "").split(",") if t]
    runs = [r for r in GRIDS[args.grid]() if not only
            or any(t in r.path(args.root).name or t in r.dataset for t in only)]
    runs.sort(key=lambda r: (r.seed, r.dataset))  # one target model loaded at a time
    targets = Targets(args.root)
    start = time.perf_counter()
    for i, run in enumerate(runs):
        cached = run.path(args.root).exists()
        t0 = time.perf_counter()
        rec = execute(run, targets)
        status = "cached" if cached else f"{time.perf_counter() - t0:.0f} s"
        m = rec.get("metrics") or {}
        short = {k: round(v, 3) for k, v in m.items() if isinstance(v, float)}
        print(f"[{i + 1}/{len(runs)}] {run.dataset} {run.label} {run.options} ({status}, "
              f"{rec.get('steps')} steps) {'DIVERGED' if rec.get('diverged') else short}",
              flush=True)
    for dataset, seed in sorted({(r.dataset, r.seed) for r in runs}):
        ref = targets.retrain(dataset, seed)
        if ref is not None:
            print(f"retrain reference {dataset} seed {seed}: {ref['metrics']}", flush=True)
    print(f"done: {len(runs)} runs in {time.perf_counter() - start:.0f} s")


def _report(args: argparse.Namespace) -> None:
    from _quality_report import report

    report(GRIDS[args.grid](), args.root)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("run", "report"):
        p = sub.add_parser(name)
        p.add_argument("grid", choices=sorted(GRIDS))
        p.add_argument("--root", type=Path, default=Path("runs/quality"))
        p.add_argument("--only", default=None, help="only runs whose data set or file name "
                       "contains this text (or one of these, comma-separated)")
        p.add_argument("--threads", type=int, default=1, help="torch threads")
    sub.add_parser("list")
    sub.add_parser("screens").add_argument("--root", type=Path, default=Path("runs/quality"))
    args = ap.parse_args()
    if args.command == "list":
        for name, grid in sorted(GRIDS.items()):
            print(f"{name}: {len(grid())} runs — {(grid.__doc__ or '').strip().splitlines()[0]}")
    elif args.command == "screens":
        from _quality_report import screen_table

        print(screen_table(args.root))
    elif args.command == "run":
        _run(args)
    else:
        _report(args)


if __name__ == "__main__":
    main()

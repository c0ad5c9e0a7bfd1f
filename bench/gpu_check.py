"""GPU readiness check: proves the Triton path on one GPU and measures its figures, in ≤ 5 min.

    python bench/gpu_check.py --out DIR            # on a machine with one CUDA GPU
    python bench/gpu_check.py --smoke --out DIR    # the same code paths on the CPU, tiny sizes

Parts, each in a process of its own under a time budget (a failure, a hang or a lost CUDA
context in one part does not stop the others; a part past its budget is killed and keeps
the items it finished):

0. ``preflight``: versions (torch, CUDA, triton ≥ 3.2, transformers), the device, that the
   package and ``fastngd.kernels`` import without experiment-only packages, a trivial
   Triton kernel;
1. ``correctness``: every kernel against ``kernels/naive.py`` and the torch backend, the
   whole optimizer (``triton`` vs ``torch``) over 7 steps for every base × rule × GeN ×
   exact/int8 × fp32/bf16, bitwise determinism, launches per step
   (:mod:`bench._gpu_correctness`);
2. ``speed``: the step and the GeN step on GPT-2-small shapes, a 1.5B-element list of 300
   tensors and 10,000 tiny tensors, fp32 and bf16, against a measured ``copy_``, naive
   PyTorch and the torch backend, with peak extra memory (:mod:`bench._gpu_speed`);
3. ``end_to_end``: unlearning steps of a 1.1B-parameter Llama in bf16 (GeN overhead,
   optimizer share, peak memory), and ``cli``: ``fastngd unlearn --device cuda`` on the
   embedded model (:mod:`bench._gpu_end_to_end`).

Writes ``DIR/gpu_check.json`` (after every part, so it exists whatever happens) and
``DIR/gpu_check.log`` (everything printed). ``--smoke`` runs on the CPU with Triton's
interpreter (``TRITON_INTERPRET=1`` in the parts' environment), so that everything except the
device-specific calls runs in the test suite.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

_ROOT = Path(__file__).resolve().parents[1]


def _importable_root() -> None:
    """Put the repository root on ``sys.path`` (for ``bench.*``) without letting its
    ``kernels/`` folder pass for a top-level ``kernels`` package (the Hugging Face package
    of that name, which transformers probes for); when the package is not installed (a
    plain checkout), map ``kernels/`` to ``fastngd.kernels`` as the installation does."""
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    import importlib.util

    spec = importlib.util.find_spec("kernels")
    origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
    if origin is not None and origin.parent == _ROOT / "kernels":
        sys.modules["kernels"] = None  # type: ignore[assignment]
    try:
        installed = importlib.util.find_spec("fastngd.kernels") is not None
    except ImportError:  # fastngd itself does not import (reported by the preflight)
        return
    if not installed:
        init = _ROOT / "kernels" / "__init__.py"
        spec = importlib.util.spec_from_file_location(
            "fastngd.kernels", init, submodule_search_locations=[str(init.parent)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["fastngd.kernels"] = module
        spec.loader.exec_module(module)
        sys.modules["fastngd"].kernels = module  # type: ignore[attr-defined]


_importable_root()

from bench._gpu_harness import (
    Log,
    PartRecorder,
    child_env,
    grant_seconds,
    python_cmd,
    run_part,
    save_json,
)

#: (part, budget in seconds on the GPU, budget in smoke mode), in the order they run.
PARTS: tuple[tuple[str, float, float], ...] = (
    ("preflight", 25, 60),
    ("correctness", 110, 150),
    ("speed", 100, 120),
    ("end_to_end", 45, 90),
    ("cli", 40, 120),
)
#: seconds kept for every part still to run when granting a part its time.
RESERVE_S = 12.0
DEFAULT_BUDGET_S = 285.0
SMOKE_BUDGET_S = 420.0


# ---------------------------------------------------------------------------- children
def _run_child(args: argparse.Namespace) -> int:
    """Run one part in this process (``--part``), recording into ``DIR/parts/PART.json``."""
    import torch

    device = torch.device("cpu" if args.smoke else args.device)
    out = Path(args.out)
    if args.part == "warm_cache":
        from bench._gpu_end_to_end import warm_cache

        os.nice(10)
        # a few host threads: the GPU parts run beside it and their launches need a core
        torch.set_num_threads(1 if args.smoke else max(1, min(4, (os.cpu_count() or 4) // 4)))
        warm_cache(args.cache_dir, args.smoke, str(out / "parts" / "warm_cache.json"))
        return 0
    rec = PartRecorder(out / "parts" / f"{args.part}.json", args.part)
    print(f"== {args.part} on {device}", flush=True)
    if args.part == "preflight":
        from bench._gpu_preflight import run_preflight

        run_preflight(device, args.smoke, rec)
    elif args.part == "correctness":
        from bench._gpu_correctness import run_correctness

        run_correctness(device, args.smoke, rec, args.deadline)
    elif args.part == "speed":
        from bench._gpu_speed import run_speed

        run_speed(device, args.smoke, rec)
    elif args.part == "end_to_end":
        from bench._gpu_end_to_end import llama_item

        rec.run("llama", lambda: llama_item(device, args.smoke))
    elif args.part == "cli":
        from bench._gpu_end_to_end import cli_item

        rec.run("fastngd-unlearn", lambda: cli_item(
            device, args.smoke, str(out / "cli-run"), args.cache_dir,
            str(out / "parts" / "warm_cache.json"), args.cli_wait))
    else:
        raise SystemExit(f"unknown part {args.part!r}")
    rec.finish()
    return 0


# ---------------------------------------------------------------------------- parent
def _env(smoke: bool) -> dict[str, str]:
    """The parts' environment: the interpreter on in smoke mode and never on a GPU (where it
    would silently run the kernels on the host), the repository importable."""
    path = os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH")) if p)
    extra: dict[str, Optional[str]] = {
        "TRITON_INTERPRET": "1" if smoke else None, "PYTHONPATH": path,
        "PYTORCH_CUDA_ALLOC_CONF": os.environ.get("PYTORCH_CUDA_ALLOC_CONF",
                                                  "expandable_segments:True"),
        "PYTHONUNBUFFERED": "1",
    }
    if smoke:
        extra["CUDA_VISIBLE_DEVICES"] = ""
    return child_env(os.environ, extra)


def _child_args(args: argparse.Namespace, part: str,
                granted_s: Optional[float] = None) -> list[str]:
    """The command line of the child running ``part`` (``granted_s``: its time, passed on
    as a deadline so that it can stop its own long loops in time)."""
    out = ["--out", str(args.out), "--part", part, "--device", args.device,
           "--cli-wait", str(args.cli_wait)]
    if granted_s is not None:
        out += ["--deadline", f"{time.time() + granted_s:.3f}"]
    if args.smoke:
        out.append("--smoke")
    if args.cache_dir:
        out += ["--cache-dir", args.cache_dir]
    return out


def _start_cache_warmer(args: argparse.Namespace, env: dict[str, str], log: Log) -> Any:
    """Train the embedded model on the host in the background (no GPU), for the CLI part."""
    import subprocess

    env = dict(env, CUDA_VISIBLE_DEVICES="")
    fh = open(Path(args.out) / "warm_cache.log", "w", encoding="utf-8")  # noqa: SIM115 (the child's)
    proc = subprocess.Popen(python_cmd(__file__, *_child_args(args, "warm_cache")), env=env,
                            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    log(f"started the embedded-model cache warm-up in the background (pid {proc.pid})")
    return proc, fh


def _stop(proc: Any, fh: Any) -> None:
    """Stop the background warm-up this script started (by its own process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, PermissionError, OSError):
            pass
        except Exception:
            os.killpg(proc.pid, signal.SIGKILL)
    fh.close()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for gpu_check.json and the log")
    ap.add_argument("--smoke", action="store_true",
                    help="CPU, Triton interpreter, tiny sizes: the code paths in seconds")
    ap.add_argument("--device", default="cuda", help="device of the check (default cuda)")
    ap.add_argument("--budget", type=float, default=None,
                    help=f"seconds for the whole check (default {DEFAULT_BUDGET_S:g}; "
                         f"smoke {SMOKE_BUDGET_S:g})")
    ap.add_argument("--parts", default=",".join(p for p, _, _ in PARTS),
                    help="comma list of parts to run (default: all)")
    ap.add_argument("--cache-dir", default=None,
                    help="cache of the embedded model (default $FASTNGD_CACHE or "
                         "~/.cache/fastngd; smoke: OUT/cache)")
    ap.add_argument("--cli-wait", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--part", default=None, help=argparse.SUPPRESS)  # a child process
    ap.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.smoke and args.cache_dir is None:
        args.cache_dir = str(Path(args.out) / "cache")
    if args.cli_wait is None:
        args.cli_wait = 60.0 if args.smoke else 25.0
    unknown = set(args.parts.split(",")) - {p for p, _, _ in PARTS}
    if unknown:
        ap.error(f"unknown parts {sorted(unknown)}; valid: {[p for p, _, _ in PARTS]}")
    if args.part is None and not args.smoke and args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            ap.error("no CUDA device here: run on a GPU machine, or use --smoke for the CPU "
                     "run of the same code")
    return args


def run_check(args: argparse.Namespace) -> dict[str, Any]:
    """The parent: every selected part in turn under the budget; returns the report."""
    from bench._gpu_report import build_report

    out = Path(args.out)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    for stale in (out / "parts").glob("*.json"):
        stale.unlink()
    log = Log(out / "gpu_check.log")
    budget = args.budget or (SMOKE_BUDGET_S if args.smoke else DEFAULT_BUDGET_S)
    t_start = time.monotonic()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    env = _env(args.smoke)
    selected = [p for p in PARTS if p[0] in args.parts.split(",")]
    runs: dict[str, dict[str, Any]] = {}
    log(f"gpu_check ({'smoke, CPU' if args.smoke else args.device}): parts "
        f"{', '.join(p for p, _, _ in selected)}; budget {budget:.0f} s; out {out}")
    warmer = _start_cache_warmer(args, env, log) if "cli" in args.parts.split(",") else None

    def save() -> dict[str, Any]:
        report = build_report(out, runs, smoke=args.smoke, budget_s=budget, started=started,
                              wall_s=time.monotonic() - t_start)
        save_json(out / "gpu_check.json", report)
        return report

    def stop(signum: int, frame: Any) -> None:  # the report is written on the way out
        raise TimeoutError(f"stopped by signal {signum} (budget {budget:.0f} s)")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGALRM, stop)
    signal.alarm(int(budget) + 30)  # a last resort: every part has its own deadline
    try:
        for i, (part, gpu_s, smoke_s) in enumerate(selected):
            remaining = budget - (time.monotonic() - t_start)
            granted = grant_seconds(remaining, smoke_s if args.smoke else gpu_s,
                                    RESERVE_S * (len(selected) - i - 1))
            log(f"-- {part}: up to {granted:.0f} s")
            # deterministic cuBLAS for the determinism runs (needs to be set before CUDA starts)
            part_env = (dict(env, CUBLAS_WORKSPACE_CONFIG=":4096:8")
                        if part == "correctness" else env)
            run = run_part(python_cmd(__file__, *_child_args(args, part, granted)), part_env,
                           granted, log, prefix=f"[{part}] ")
            runs[part] = run.as_dict()
            log(f"-- {part}: {run.status} in {run.seconds:.1f} s")
            save()
    finally:
        signal.alarm(0)
        if warmer is not None:
            _stop(*warmer)
        report = save()
        log.close()
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.part is not None:
        return _run_child(args)
    report = run_check(args)
    from bench._gpu_report import print_summary

    print_summary(report)
    print(f"wrote {Path(args.out) / 'gpu_check.json'} and {Path(args.out) / 'gpu_check.log'}")
    return 0 if report["summary"]["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

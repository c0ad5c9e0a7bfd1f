"""Tables, the quality bar and trade-off plots of ``bench/quality.py`` runs.

The bar (issue 14), per run, relative to the target model before unlearning:

* TOFU layout: forget ROUGE-L recall ≤ 0.02, forget fact accuracy 0, retain ROUGE-L recall
  ≥ 0.95× before;
* MUSE layout: VerbMem and KnowMem-forget ≤ 0.1× before, KnowMem-retain ≥ 0.9× before;
* digits: forget accuracy 0 (training images), retain accuracy ≥ 0.99× before.
"""
from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _quality_run import Run

#: per kind: (forget metric, retain metric) of the trade-off plot and the tables' columns.
AXES = {
    "tofu": ("forget_rouge_l_recall", "retain_rouge_l_recall"),
    "muse": ("knowmem_forget", "knowmem_retain"),
    "digits": ("train_forget_accuracy", "train_retain_accuracy"),
}
COLUMNS = {
    "tofu": ("forget_rouge_l_recall", "forget_fact_accuracy", "retain_rouge_l_recall",
             "retain_fact_accuracy", "model_utility"),
    "muse": ("verbmem_forget", "knowmem_forget", "knowmem_retain", "privleak"),
    "digits": ("train_forget_accuracy", "train_retain_accuracy", "test_forget_accuracy",
               "test_retain_accuracy"),
}


def kind_of(dataset: str) -> str:
    if dataset.startswith("digits"):
        return "digits"
    if dataset.startswith(("muse", "chronicles")):
        return "muse"
    return "tofu"


def passes(kind: str, after: dict[str, Any] | None, before: dict[str, Any]) -> bool:
    """Whether one run meets the quality bar (see the module docstring)."""
    if not after:
        return False
    try:
        if kind == "tofu":
            return (after["forget_rouge_l_recall"] <= 0.02
                    and (after["forget_fact_accuracy"] or 0.0) == 0.0
                    and after["retain_rouge_l_recall"] >= 0.95 * before["retain_rouge_l_recall"])
        if kind == "muse":
            return (after["verbmem_forget"] <= 0.1 * before["verbmem_forget"]
                    and after["knowmem_forget"] <= 0.1 * before["knowmem_forget"]
                    and after["knowmem_retain"] >= 0.9 * before["knowmem_retain"])
        return (after["train_forget_accuracy"] == 0.0
                and after["train_retain_accuracy"] >= 0.99 * before["train_retain_accuracy"])
    except (KeyError, TypeError):
        return False


def _mean_std(values: Sequence[float]) -> str:
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.3f}"
    return f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals):.3f}"


def group_key(run: Run) -> str:
    opts = {k: v for k, v in run.options.items()}
    text = json.dumps(opts, sort_keys=True) if opts else ""
    return f"{run.method} {run.step} {run.base} lr={run.lr:g} {text}"


def load_records(runs: Sequence[Run], root: Path) -> list[tuple[Run, dict[str, Any]]]:
    out = []
    for run in runs:
        path = run.path(root)
        if path.exists():
            out.append((run, json.loads(path.read_text())))
    return out


def table(dataset: str, records: list[tuple[Run, dict[str, Any]]]) -> str:
    """Mean ± std over seeds per setting, the before row first; ``bar`` counts the seeds that
    meet the quality bar, ``s`` is the mean unlearning wall time, ``steps`` the mean steps."""
    kind = kind_of(dataset)
    cols = COLUMNS[kind]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    befores = {}
    for run, rec in records:
        groups[group_key(run)].append(rec)
        befores[run.seed] = rec["before"]
    lines = [f"## {dataset}", "| setting | " + " | ".join(cols) + " | bar | steps | s |",
             "|---" * (len(cols) + 4) + "|"]
    lines.append("| before | " + " | ".join(_mean_std([b.get(c) for b in befores.values()])
                                            for c in cols) + " | | | |")
    for name, recs in groups.items():
        ok = [r for r in recs if not r.get("diverged")]
        cells = [_mean_std([r["metrics"].get(c) for r in ok]) for c in cols]
        bar = sum(passes(kind, r.get("metrics"), r["before"]) for r in recs)
        div = len(recs) - len(ok)
        steps = _mean_std([r.get("steps") for r in ok])
        secs = _mean_std([r.get("unlearn_seconds") for r in recs])
        lines.append(f"| {name}{f' ({div} diverged)' if div else ''} | " + " | ".join(cells)
                     + f" | {bar}/{len(recs)} | {steps} | {secs} |")
    return "\n".join(lines)


def plot(dataset: str, records: list[tuple[Run, dict[str, Any]]], out: Path,
         headline: str = "ngdiff") -> Path:
    """Forget metric vs retain metric (relative to before), one point per run; NGDiff with
    an adaptive step size drawn as stars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = kind_of(dataset)
    fx, ry = AXES[kind]
    fig, ax = plt.subplots(figsize=(6.5, 5))
    by_method: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run, rec in records:
        m = rec.get("metrics")
        if not m or m.get(fx) is None or m.get(ry) is None:
            continue
        b = rec["before"]
        x = m[fx] / b[fx] if kind == "muse" and b[fx] else m[fx]
        y = m[ry] / b[ry] if b[ry] else m[ry]
        name = run.method + ("+autolr" if run.step != "fixed" else "") + (
            f" ({run.base})" if run.base != "sgd" else "")
        by_method[name].append((x, y))
    for name, pts in sorted(by_method.items()):
        star = name.startswith(headline + "+")
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=name,
                   marker="*" if star else "o", s=140 if star else 30, alpha=0.8,
                   zorder=3 if star else 2)
    ax.set_xlabel(fx + (" / before" if kind == "muse" else "") + "  (lower is better)")
    ax.set_ylabel(ry + " / before  (higher is better)")
    ax.set_title(f"{dataset}: forget vs retain")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"tradeoff-{dataset.replace('/', '_')}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(runs: Sequence[Run], root: Path) -> None:
    records = load_records(runs, root)
    by_dataset: dict[str, list[tuple[Run, dict[str, Any]]]] = defaultdict(list)
    for run, rec in records:
        by_dataset[run.dataset].append((run, rec))
    print(f"{len(records)}/{len(runs)} runs finished")
    for dataset, recs in by_dataset.items():
        print()
        print(table(dataset, recs))
        print(f"plot: {plot(dataset, recs, root / 'plots')}")

"""Tables, the quality bar and trade-off plots of ``bench/quality.py`` runs.

The quality bar of the README, per run, relative to the target model before unlearning:

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

from _quality_grids import CHOSEN_RUN, GUARD
from _quality_run import Run

#: options that spell out ``UnlearnConfig``'s defaults (the screens ran them explicitly before
#: they became the defaults): such runs are labelled, and averaged, as ``defaults``.
DEFAULT_EQUIVALENTS = (CHOSEN_RUN, {"autolr_scale": 1.8, "guard": GUARD, **CHOSEN_RUN})

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


def _mean_std(values: Sequence[float], digits: int = 3) -> str:
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.mean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def _option_text(key: str, value: Any) -> str:
    if key == "autolr_scale":
        return f"κ={value:g}"
    if key == "epochs":
        return f"{value} ep"
    if key == "stop":
        return f"stop {value['rise']:g} nats ≥{value.get('min_steps', 0)} steps"
    if key == "stop_example_rise":
        return f"every example +{value:g} nats"
    if key == "objective_options" and set(value) == {"cap"}:
        return f"forget CE capped at {value['cap']:g} nats"
    if key == "forget_target":
        return f"{value} target"
    if key == "stop_quantile":
        return f"q={value:g}"
    if key == "stop_rise" and value is None:
        return "no mean rule"
    if key == "stop_min_steps":
        return f"≥{value} steps"
    if key == "guard":
        return "guard " + "/".join(f"{k}={v:g}" for k, v in sorted(value.items()))
    return f"{key}={json.dumps(value, sort_keys=True)}"


def group_key(run: Run, rec: dict[str, Any] | None = None) -> str:
    """A short label of a run's settings but its seed (``defaults`` when no option is
    overridden). A record whose settings lack ``stop_rise`` predates the chosen defaults: its
    unset options were the earlier defaults (30 epochs, no stopping rule), and the label says
    so."""
    if (rec is not None and "stop_rise" not in rec.get("settings", {})
            and run.options not in DEFAULT_EQUIVALENTS):
        old = {"epochs": 30, **run.options}
        return group_key(Run(run.dataset, run.method, run.step, run.lr, run.seed, run.base,
                             old)) + " [earlier defaults]"
    opts = {} if run.options in DEFAULT_EQUIVALENTS else run.options
    text = ", ".join(_option_text(k, v) for k, v in sorted(opts.items())) or "defaults"
    return f"{run.method} {run.step} {run.base} lr={run.lr:g} ({text})"


def load_records(runs: Sequence[Run], root: Path) -> list[tuple[Run, dict[str, Any]]]:
    out = []
    for run in runs:
        path = run.path(root)
        if path.exists():
            out.append((run, json.loads(path.read_text())))
    return out


def table(dataset: str, records: list[tuple[Run, dict[str, Any]]],
          retrain: dict[int, dict[str, Any]] | None = None) -> str:
    """Mean ± std over seeds per setting, the before row first, then the retrain reference
    (``retrain``: its metrics by seed, when given); ``bar`` counts the seeds that meet the
    quality bar, ``s`` is the mean unlearning wall time (seconds, evaluation not included),
    ``steps`` the mean steps."""
    kind = kind_of(dataset)
    cols = COLUMNS[kind]
    by_seed: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    befores = {}
    for run, rec in records:
        by_seed[group_key(run, rec)].setdefault(run.seed, rec)  # one record per setting and seed
        befores[run.seed] = rec["before"]
    groups = {name: list(recs.values()) for name, recs in by_seed.items()}
    references = {s: m for s, m in sorted((retrain or {}).items()) if s in befores}
    lines = [f"## {dataset}", "| setting | " + " | ".join(cols) + " | bar | steps | s |",
             "|---" * (len(cols) + 4) + "|"]
    lines.append("| before | " + " | ".join(_mean_std([b.get(c) for b in befores.values()])
                                            for c in cols) + " | | | |")
    if references:
        lines.append("| retrain (retain-only model) | " + " | ".join(
            _mean_std([m.get(c) for m in references.values()]) for c in cols)
            + f" | {sum(passes(kind, m, befores[s]) for s, m in references.items())}"
              f"/{len(references)} | | |")
    for name, recs in groups.items():
        ok = [r for r in recs if not r.get("diverged")]
        cells = [_mean_std([r["metrics"].get(c) for r in ok]) for c in cols]
        bar = sum(passes(kind, r.get("metrics"), r["before"]) for r in recs)
        div = len(recs) - len(ok)
        steps = _mean_std([r.get("steps") for r in ok], 0)
        secs = _mean_std([r.get("unlearn_seconds") for r in recs], 0)
        lines.append(f"| {name}{f' ({div} diverged)' if div else ''} | " + " | ".join(cells)
                     + f" | {bar}/{len(recs)} | {steps} | {secs} |")
    return "\n".join(lines)


RETAIN_CAP = 1.0
"""Retain axis of the comparisons (:func:`beats`): retain metric / before, capped here. A
run that ends *above* the target model on its retain metric has kept all of it, as has one
that ends at the target's score: unlearning is judged by what it keeps of the model it
starts from, and a score above that one comes from fitting the retain rows further (on the
MUSE layout: answering retain questions the target itself gets wrong), not from keeping
more. The tables and plots show the uncapped values."""


def _point(kind: str, rec: dict[str, Any], cap: float) -> tuple[float, float] | None:
    """(forget metric, min(retain metric / before, ``cap``)) of a run, or None (diverged);
    the forget metric is relative to before on the MUSE layout. Where the target scores 0 on
    the retain metric (chronicles' KnowMem) there is nothing to keep: every run is at the
    cap, and without one (``cap`` infinite) at its own raw value."""
    m, b = rec.get("metrics"), rec["before"]
    fx, ry = AXES[kind]
    if not m or m.get(fx) is None or m.get(ry) is None:
        return None
    x = m[fx] / b[fx] if kind == "muse" and b[fx] else m[fx]
    if not b[ry]:
        return x, m[ry] if math.isinf(cap) else cap
    return x, min(m[ry] / b[ry], cap)


def beats(kind: str, rec: dict[str, Any], other: dict[str, Any], margin: float,
          cap: float = RETAIN_CAP) -> bool:
    """Whether run ``other`` beats run ``rec``: it dominates it in (forget, retain) — no
    worse on either axis and better by more than ``margin`` on one, the retain axis capped at
    ``cap`` (the target's score: :data:`RETAIN_CAP`) — or meets the quality bar where ``rec``
    misses (a diverged ``rec`` is beaten by any finished run)."""
    mine, theirs = _point(kind, rec, cap), _point(kind, other, cap)
    if theirs is None:
        return False
    if mine is None:
        return True
    dom = (theirs[0] <= mine[0] and theirs[1] >= mine[1]
           and (theirs[0] < mine[0] - margin or theirs[1] > mine[1] + margin))
    return dom or (passes(kind, other.get("metrics"), other["before"])
                   and not passes(kind, rec.get("metrics"), rec["before"]))


def _verdict(kind: str, rec: dict[str, Any], others: list[tuple[str, dict[str, Any]]],
             margin: float, bad: str, good: str) -> str:
    """``bad`` and the labels of the ``others`` that beat ``rec`` (:func:`beats`, retain axis
    capped), or ``good`` if none. Where the uncapped retain axis answers otherwise, its
    answer follows in brackets, so a tie that the cap makes stays visible."""
    def say(cap: float) -> str:
        names = [label for label, x in others if beats(kind, rec, x, margin, cap)]
        return f"{bad} {', '.join(names)}" if names else good

    capped, uncapped = say(RETAIN_CAP), say(math.inf)
    return capped if uncapped == capped else f"{capped} (uncapped retain axis: {uncapped})"


def autolr_vs_fixed(dataset: str, records: list[tuple[Run, dict[str, Any]]],
                    margin: float = 0.005) -> list[str]:
    """Per seed and run length: whether a fixed-rate NGDiff run of the sweep (same base,
    same settings but the rate) beats NGDiff + AutoLR (:func:`beats`: dominates it in
    (forget, retain) by more than ``margin`` on one axis, or meets the quality bar where
    AutoLR misses)."""
    kind = kind_of(dataset)
    lines = []
    for run, rec in records:
        if run.method != "ngdiff" or run.step == "fixed":
            continue
        same = {k: v for k, v in run.options.items() if k not in ("autolr_scale", "guard")}
        fixed = [(r, x) for r, x in records if r.method == "ngdiff" and r.step == "fixed"
                 and r.base == run.base and r.seed == run.seed and r.options == same]
        if not fixed:
            continue
        lrs = ", ".join(f"{r.lr:g}" for r, _ in fixed)
        lines.append(f"{group_key(run)} s{run.seed}: " + _verdict(
            kind, rec, [(f"lr={r.lr:g}", x) for r, x in fixed], margin,
            "WORSE than fixed", f"not worse than any fixed rate of the sweep ({lrs})"))
    return lines


def frontier(dataset: str, records: list[tuple[Run, dict[str, Any]]],
             margin: float = 0.005) -> list[str]:
    """Per seed with baselines: whether any other method (any rate, fixed or adaptive, same
    seed and base; NGDiff's own fixed rates are :func:`autolr_vs_fixed`'s) beats NGDiff +
    AutoLR with the defaults (:func:`beats`), i.e. whether it sits on the frontier."""
    kind = kind_of(dataset)
    lines = []
    for run, rec in records:
        if run.method != "ngdiff" or run.step == "fixed" or run.options:
            continue
        others = [(r, x) for r, x in records if r.method != "ngdiff" and r.seed == run.seed
                  and r.base == run.base and r.options.get("forget_target") != "ascent"]
        if not others:
            continue
        lines.append(f"{group_key(run)} s{run.seed}: " + _verdict(
            kind, rec, [(f"{r.method} lr={r.lr:g}", x) for r, x in others], margin,
            "DOMINATED by", f"on the frontier against {len(others)} baseline runs"))
    return lines


def plot(dataset: str, records: list[tuple[Run, dict[str, Any]]], out: Path,
         headline: str = "ngdiff", retrain: dict[int, dict[str, Any]] | None = None) -> Path:
    """Forget metric vs retain metric (relative to before), one point per run, one colour per
    method; NGDiff with an adaptive step size drawn as stars, the retrain reference of each
    seed (``retrain``: its metrics by seed) as black crosses, the target's retain score
    (:data:`RETAIN_CAP`) as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = kind_of(dataset)
    fx, ry = AXES[kind]
    fig, ax = plt.subplots(figsize=(6.5, 5))
    by_method: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run, rec in records:
        point = _point(kind, rec, math.inf)
        if point is None:
            continue
        name = run.method + ("+autolr" if run.step != "fixed" else "") + (
            f" ({run.base})" if run.base != "sgd" else "") + (
            " [per-example stop]" if "stop_example_rise" in run.options else "") + (
            " [ascent target]" if run.options.get("forget_target") == "ascent" else "")
        by_method[name].append(point)
    befores = {run.seed: rec["before"] for run, rec in records}
    for seed, m in sorted((retrain or {}).items()):
        point = (_point(kind, {"metrics": m, "before": befores[seed]}, math.inf)
                 if seed in befores else None)
        if point is not None:
            by_method["retrain (retain-only model)"].append(point)
    colours = (*plt.get_cmap("tab10").colors, *plt.get_cmap("Dark2").colors)
    for i, (name, pts) in enumerate(sorted(by_method.items())):
        star, cross = name.startswith(headline + "+"), name.startswith("retrain")
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=name,
                   color="black" if cross else colours[i % len(colours)],
                   marker="*" if star else "X" if cross else "o",
                   s=140 if star else 60 if cross else 30, alpha=0.8,
                   zorder=3 if star or cross else 2)
    ax.axhline(RETAIN_CAP, color="grey", linestyle="--", linewidth=0.8, zorder=1,
               label="the target's retain score (the comparisons' cap)")
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
    from _quality_run import Targets

    records = load_records(runs, root)
    targets = Targets(root)
    by_dataset: dict[str, list[tuple[Run, dict[str, Any]]]] = defaultdict(list)
    for run, rec in records:
        by_dataset[run.dataset].append((run, rec))
    print(f"{len(records)}/{len(runs)} runs finished")
    for dataset, recs in by_dataset.items():
        print()
        references = {seed: targets.retrain(dataset, seed, build=False)
                      for seed in sorted({run.seed for run, _ in recs})}
        retrain = {s: r["metrics"] for s, r in references.items() if r}
        print(table(dataset, recs, retrain))
        for line in autolr_vs_fixed(dataset, recs) + frontier(dataset, recs):
            print(f"- {line}")
        print(f"plot: {plot(dataset, recs, root / 'plots', retrain=retrain)}")


SCREENS = ("screen-sgd", "screen-sgd2", "screen-adam", "screen-adam2", "screen-final")


def screen_table(root: Path) -> str:
    """The screens on tofu-synthetic (seed 0) as one table: forget / retain ROUGE-L recall
    per forget split, one row per setting."""
    from _quality_grids import GRIDS

    rows: dict[str, dict[str, tuple[float, float]]] = {}
    for grid in SCREENS:
        for run, rec in load_records(GRIDS[grid](), root):
            m = rec.get("metrics") or {}
            if m.get("forget_rouge_l_recall") is not None:
                split = run.dataset.partition("/")[2]
                rows.setdefault(group_key(run, rec), {})[split] = (
                    m["forget_rouge_l_recall"], m["retain_rouge_l_recall"])
    splits = ("forget01", "forget05", "forget10")
    lines = ["| setting (tofu-synthetic, seed 0; forget / retain ROUGE-L recall) | "
             + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for name, cells in rows.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{cells[s][0]:.3f} / {cells[s][1]:.3f}" if s in cells else "–" for s in splits)
            + " |")
    return "\n".join(lines)

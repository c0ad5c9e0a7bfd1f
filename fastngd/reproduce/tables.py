"""Plain-text tables of experiment results (the layout of the NGDiff paper's Tables 1 and 3)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["SEED_TABLE_KEYS", "autolr_table", "format_table", "method_table", "metrics_table"]

SEED_TABLE_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "tofu": (
        ("forget_rouge_l_recall", "forget R-L↓"), ("retain_rouge_l_recall", "retain R-L↑"),
        ("verbmem", "Verbmem↓"), ("truth_ratio", "TruthRatio"),
        ("forget_fact_accuracy", "FactAcc F↓"), ("retain_fact_accuracy", "FactAcc R↑"),
        ("model_utility", "ModelUtil↑"),
    ),
    "muse": (
        ("verbmem_forget", "VerbMem F↓"), ("knowmem_forget", "KnowMem F↓"),
        ("knowmem_retain", "KnowMem R↑"), ("privleak", "PrivLeak"),
    ),
    "digits": (
        ("train_forget_accuracy", "forget acc"), ("train_retain_accuracy", "retain acc"),
        ("test_forget_accuracy", "test forget"), ("test_retain_accuracy", "test retain"),
    ),
}
"""``(result key, column label)`` of the mean ± std table of each ``fastngd reproduce``
experiment."""

_TABLE1_COLUMNS: tuple[tuple[str, str], ...] = (
    ("verbmem", "Verbmem↓"),
    ("forget_rouge_l_recall", "Knowmem↓"),
    ("utility", "Utility↑"),
    ("truth_ratio", "TruthRatio"),
    ("forget_fact_accuracy", "FactAcc F↓"),
    ("retain_fact_accuracy", "FactAcc R↑"),
    ("model_utility", "ModelUtil↑"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned first column, right-aligned others, a rule under the header."""
    cells = [list(header)] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for k, row in enumerate(cells):
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(parts))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def method_table(results: Mapping[str, Any], base_label: str = "no unlearning") -> str:
    """Table 1: one row per method (and the model before unlearning, labelled
    ``base_label``) with the NGDiff paper's metrics; ``results`` has ``"no_unlearn"`` and
    ``"methods"`` (see :func:`fastngd.reproduce.tofu.run_tofu`)."""
    header = ["method", "AutoLR", "base"] + [label for _, label in _TABLE1_COLUMNS]
    rows: list[list[Any]] = [[base_label, "-", "-"] + [results["no_unlearn"].get(k) for k, _ in
                                                       _TABLE1_COLUMNS]]
    for name, res in results["methods"].items():
        head = [name, res.get("autolr"), res.get("base") or "-"]
        if res.get("diverged"):
            rows.append(head + ["diverged"] + ["-"] * (len(_TABLE1_COLUMNS) - 1))
            continue
        rows.append(head + [res.get(k) for k, _ in _TABLE1_COLUMNS])
    return format_table(header, rows)


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """Two aligned columns, ``metric  value``, of the numeric and text entries of
    ``metrics`` (numbers with 3 decimals); the width follows the longest name."""
    rows = [[key, value] for key, value in metrics.items()
            if isinstance(value, (int, float, str, bool)) or value is None]
    return format_table(["metric", "value"], rows)


def autolr_table(results: Mapping[str, Any]) -> str:
    """Table 3: for every method run both with and without AutoLR, the forget and retain
    ROUGE-L recall (and Verbmem) side by side."""
    by_method: dict[str, dict[bool, Mapping[str, Any]]] = {}
    for res in results["methods"].values():
        if res.get("method") is None:
            continue
        by_method.setdefault(res["method"], {})[bool(res.get("autolr"))] = res
    header = ["method", "Knowmem↓ fixed", "Utility↑ fixed", "Knowmem↓ AutoLR",
              "Utility↑ AutoLR", "Verbmem↓ fixed", "Verbmem↓ AutoLR"]
    rows = []
    for method, pair in by_method.items():
        if False not in pair or True not in pair:
            continue
        off, on = pair[False], pair[True]
        rows.append([method, off.get("forget_rouge_l_recall"), off.get("utility"),
                     on.get("forget_rouge_l_recall"), on.get("utility"), off.get("verbmem"),
                     on.get("verbmem")])
    if not rows:
        return "(no method was run both with and without AutoLR)"
    return format_table(header, rows)

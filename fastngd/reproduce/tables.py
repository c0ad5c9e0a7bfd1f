"""Plain-text tables of experiment results (the layout of the NGDiff paper's Tables 1 and 3)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["autolr_table", "format_table", "method_table"]

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


def method_table(results: Mapping[str, Any]) -> str:
    """Table 1: one row per method (and the model before unlearning) with the NGDiff paper's
    metrics; ``results`` has ``"no_unlearn"`` and ``"methods"`` (see
    :func:`fastngd.reproduce.tofu.run_tofu`)."""
    header = ["method", "AutoLR"] + [label for _, label in _TABLE1_COLUMNS]
    rows: list[list[Any]] = [["no unlearning", "-"] + [results["no_unlearn"].get(k) for k, _ in
                                                       _TABLE1_COLUMNS]]
    for name, res in results["methods"].items():
        if res.get("diverged"):
            rows.append([name, res.get("autolr")] + ["diverged"] + ["-"] * (len(_TABLE1_COLUMNS) - 1))
            continue
        rows.append([name, res.get("autolr")] + [res.get(k) for k, _ in _TABLE1_COLUMNS])
    return format_table(header, rows)


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

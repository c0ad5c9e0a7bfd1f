"""Plain-text tables of experiment results (the layout of the NGDiff paper's Tables 1 and 3)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "SEED_TABLE_KEYS", "autolr_table", "format_table", "lookup", "method_table",
    "metrics_table", "retain_split_table", "tofu_metrics_table", "tofu_tables",
    "utility_components_table",
]

SEED_TABLE_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "tofu": (
        ("forget_rouge_l_recall", "forget R-L↓"), ("retain_rouge_l_recall", "retain R-L↑"),
        ("verbmem", "Verbmem↓"), ("truth_ratio", "TruthRatio"),
        ("forget_fact_accuracy", "FactAcc F↓"), ("retain_fact_accuracy", "FactAcc R↑"),
        ("model_utility", "ModelUtil↑"), ("forget_quality", "ForgetQ↑"),
        ("privleak", "PrivLeak"), ("extraction_strength", "ES↓"),
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
experiment (a key may be a dotted path into nested results, see :func:`lookup`)."""

_TOFU_METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("forget_quality", "ForgetQ↑"),
    ("model_utility", "ModelUtil↑"),
    ("privleak", "PrivLeak"),
    ("mia.loss", "MIA loss"),
    ("mia.zlib", "MIA zlib"),
    ("mia.min_k", "MIA MinK"),
    ("mia.min_k_plus_plus", "MIA MinK++"),
    ("extraction_strength", "ES↓"),
    ("exact_memorization", "EM↓"),
)

_COMPONENT_SPLITS: tuple[tuple[str, str], ...] = (
    ("retain", "retain"), ("real_authors", "real authors"), ("world_facts", "world facts"),
)

_TABLE1_COLUMNS: tuple[tuple[str, str], ...] = (
    ("verbmem", "Verbmem↓"),
    ("forget_rouge_l_recall", "Knowmem↓"),
    ("utility", "Utility↑"),
    ("truth_ratio", "TruthRatio"),
    ("forget_fact_accuracy", "FactAcc F↓"),
    ("retain_fact_accuracy", "FactAcc R↑"),
    ("model_utility", "ModelUtil↑"),
)


def lookup(entry: Mapping[str, Any], key: str) -> Any:
    """``entry[key]``, where a dotted ``key`` (``"mia.min_k"``) walks nested mappings; None
    when a level is missing or None."""
    value: Any = entry
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


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


def metrics_table(metrics: Mapping[str, Any], label: str = "value") -> str:
    """Two aligned columns, ``metric  {label}``, of the numeric and text entries of
    ``metrics`` (numbers with 3 decimals; a nested mapping such as ``mia`` gives one row per
    entry, ``mia.loss``...); the width follows the longest name."""
    rows: list[list[Any]] = []
    for key, value in metrics.items():
        entries = value.items() if isinstance(value, Mapping) else [("", value)]
        for sub, item in entries:
            if isinstance(item, (int, float, str, bool)) or item is None:
                rows.append([f"{key}.{sub}" if sub else key, item])
    return format_table(["metric", label], rows)


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


def _rows(results: Mapping[str, Any], base_label: str,
          cells: Any) -> list[list[Any]]:
    """``[label, *cells(entry)]`` for the model before unlearning and each method (a
    diverged run gets ``diverged`` in its first cell)."""
    rows = [[base_label, *cells(results["no_unlearn"])]]
    for name, res in results["methods"].items():
        values = cells(res)
        if res.get("diverged"):
            values = ["diverged"] + ["-"] * (len(values) - 1)
        rows.append([name, *values])
    return rows


def tofu_metrics_table(results: Mapping[str, Any], base_label: str = "no unlearning") -> str:
    """TOFU's and open-unlearning's metrics per method (:func:`method_table`'s rows): forget
    quality, model utility, PrivLeak, the membership-inference AUCs (forget vs holdout:
    1 = told apart, 0.5 = looks unseen) and the extraction strength and exact memorization
    of the forget answers."""
    header = ["method"] + [label for _, label in _TOFU_METRIC_COLUMNS]
    rows = _rows(results, base_label,
                 lambda entry: [lookup(entry, k) for k, _ in _TOFU_METRIC_COLUMNS])
    return format_table(header, rows)


def utility_components_table(results: Mapping[str, Any],
                             base_label: str = "no unlearning") -> str:
    """The 9 components of TOFU's model utility per method, ``probability / ROUGE-L recall /
    truth ratio`` for the retain, real-authors and world-facts splits, and the components
    equal to 0 (which make the harmonic mean 0)."""
    def cells(entry: Mapping[str, Any]) -> list[Any]:
        components = entry.get("model_utility_components") or {}
        out: list[Any] = []
        for split, _ in _COMPONENT_SPLITS:
            values = [components.get(f"{split}_{m}") for m in
                      ("probability", "rouge_l_recall", "truth_ratio")]
            out.append(" / ".join(_cell(v) for v in values))
        out.append(", ".join(entry.get("model_utility_zero_components") or []) or "-")
        return out

    header = ["method"] + [label for _, label in _COMPONENT_SPLITS] + ["zero"]
    return format_table(header, _rows(results, base_label, cells))


_RETAIN_SPLIT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("n", "n"),
    ("rougeL_recall", "R-L↑"),
    ("probability", "prob↑"),
    ("fact_accuracy", "FactAcc↑"),
    ("exact_memorization", "EM"),
    ("extraction_strength", "ES"),
)


def retain_split_table(result: Mapping[str, Any], label: str = "model") -> str:
    """The scores of the whole retain split (``fastngd eval --retain-split``) in an
    :func:`fastngd.eval.evaluate_tofu` ``result``: one row, ``label``, of its size, ROUGE-L
    recall, probability, fact accuracy, exact memorization and extraction strength, under a
    title naming the split (and saying that Table 1's FactAcc R is this split's where the
    retain-type split has none, see :func:`fastngd.reproduce.tofu.summarise_tofu`); ``""``
    when the result has no such split."""
    scores = lookup(result, "aggregate.retain_split")
    if not isinstance(scores, Mapping):
        return ""
    name = lookup(result, "settings.retain_split") or scores.get("config") or "retain"
    title = f"Whole retain split {name} (--retain-split)"
    if (lookup(result, "aggregate.retain.fact_accuracy") is None
            and scores.get("fact_accuracy") is not None):
        title += "; FactAcc R↑ above is its fact accuracy"
    header = ["method"] + [column for _, column in _RETAIN_SPLIT_COLUMNS]
    row = [label] + [scores.get(key) for key, _ in _RETAIN_SPLIT_COLUMNS]
    return f"{title}\n{format_table(header, [row])}"


def tofu_tables(results: Mapping[str, Any], base_label: str = "no unlearning") -> str:
    """Table 1 (:func:`method_table`), the TOFU/open-unlearning metrics
    (:func:`tofu_metrics_table`) and the model-utility components
    (:func:`utility_components_table`) of the model before unlearning (``base_label``) and
    each method (``results`` as :func:`fastngd.reproduce.tofu.run_tofu` returns them)."""
    return "\n\n".join([
        method_table(results, base_label=base_label),
        "TOFU and open-unlearning metrics (forget quality against the retain-only model; "
        "membership inference: forget vs holdout)\n"
        + tofu_metrics_table(results, base_label=base_label),
        "Model utility components (probability / ROUGE-L recall / truth ratio)\n"
        + utility_components_table(results, base_label=base_label),
    ])

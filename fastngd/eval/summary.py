"""Split-level summaries of the TOFU protocol: forget quality and model utility.

Reference implementation: TOFU (``locuslab/tofu``, ``aggregate_eval_stat.py``:
``get_forget_quality``, ``get_model_utility``) and open-unlearning
(``src/evals/metrics/privacy.py`` ``ks_test``, ``utility.py`` ``hm_aggregate``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from fastngd.eval._checks import check_nonempty

__all__ = [
    "MODEL_UTILITY_COMPONENTS",
    "forget_quality",
    "forget_quality_from_logs",
    "model_utility",
    "zero_components",
]

MODEL_UTILITY_COMPONENTS: tuple[str, ...] = tuple(
    f"{split}_{metric}"
    for split in ("retain", "real_authors", "world_facts")
    for metric in ("probability", "rouge_l_recall", "truth_ratio")
)
"""The 9 numbers whose harmonic mean is TOFU's model utility, in TOFU's order."""


def _finite(name: str, values: Sequence[float]) -> list[float]:
    check_nonempty(name, values)
    out = [float(v) for v in values]
    for i, v in enumerate(out):
        if not math.isfinite(v):
            raise ValueError(f"{name}[{i}] is not finite: {v!r}")
    return out


def _ks_pvalue(a: list[float], b: list[float]) -> float:
    """``scipy.stats.ks_2samp(a, b).pvalue`` (scipy imported here: only the KS test needs it)."""
    from scipy.stats import ks_2samp  # type: ignore[import-untyped]

    return float(ks_2samp(a, b).pvalue)


def forget_quality(tr_unlearned: Sequence[float], tr_retain_model: Sequence[float]) -> float:
    """Forget quality: the two-sample Kolmogorov–Smirnov p-value between two samples.

    Definition: ``scipy.stats.ks_2samp(tr_unlearned, tr_retain_model).pvalue`` where the
    samples are the per-example truth ratios on the forget set of the unlearned model and
    of a model trained on the retain set only (TOFU ``get_forget_quality``, which passes
    ``1/tr``: the KS statistic only depends on the ranks, so ``tr``, ``1/tr`` and
    ``log tr`` give the same p-value). High (→ 1) means indistinguishable from the
    retain-only model. Raises ``ValueError`` on an empty sample or a non-finite value.
    """
    a = _finite("tr_unlearned", tr_unlearned)
    b = _finite("tr_retain_model", tr_retain_model)
    return _ks_pvalue(a, b)


def forget_quality_from_logs(
    log_tr_unlearned: Sequence[float], log_tr_reference: Sequence[float]
) -> float:
    """:func:`forget_quality` of log truth ratios (the same p-value: ``log`` is monotone),
    finite whenever the log-probabilities are. Raises like :func:`forget_quality`."""
    a = _finite("log_tr_unlearned", log_tr_unlearned)
    b = _finite("log_tr_reference", log_tr_reference)
    return _ks_pvalue(a, b)


def model_utility(values: Iterable[float] | Mapping[str, float]) -> float:
    """Model utility: the harmonic mean ``n / sum_i (1 / v_i)`` of non-negative scores.

    In TOFU the scores are the 9 :data:`MODEL_UTILITY_COMPONENTS`: probability, ROUGE-L
    recall and truth ratio (retain kind) of the retain, real-authors and world-facts sets
    (``scipy.stats.hmean`` in TOFU ``aggregate_eval_stat.py`` ``get_model_utility`` and
    open-unlearning ``utility.py`` ``hm_aggregate``). A mapping contributes its values. Any zero
    score gives 0 (:func:`zero_components` names it). Raises ``ValueError`` when there is
    no score or a score is negative or not finite.
    """
    items = list(values.values()) if isinstance(values, Mapping) else list(values)
    vals = _finite("values", items)
    for i, v in enumerate(vals):
        if v < 0.0:
            raise ValueError(f"model_utility: values[{i}] = {v} is negative")
    if any(v == 0.0 for v in vals):
        return 0.0
    return len(vals) / sum(1.0 / v for v in vals)


def zero_components(components: Mapping[str, float | None]) -> list[str]:
    """Names of the components equal to 0, which make the harmonic mean 0 on their own."""
    return [name for name, value in components.items() if value is not None and value == 0.0]

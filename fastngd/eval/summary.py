"""Split-level summaries of the TOFU protocol: forget quality and model utility."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from scipy.stats import ks_2samp

from fastngd.eval._checks import check_nonempty

__all__ = ["forget_quality", "model_utility"]


def _finite(name: str, values: Sequence[float]) -> list[float]:
    check_nonempty(name, values)
    out = [float(v) for v in values]
    for i, v in enumerate(out):
        if not math.isfinite(v):
            raise ValueError(f"{name}[{i}] is not finite: {v!r}")
    return out


def forget_quality(tr_unlearned: Sequence[float], tr_retain_model: Sequence[float]) -> float:
    """Forget quality: the two-sample Kolmogorov–Smirnov p-value between two samples.

    Definition: ``scipy.stats.ks_2samp(tr_unlearned, tr_retain_model).pvalue`` where the
    samples are the per-example truth ratios (:func:`fastngd.eval.truth_ratios`) on the
    forget set of the unlearned model and of a model trained on the retain set only.
    High (→ 1) means indistinguishable from the retain-only model. Raises ``ValueError``
    on an empty sample or a non-finite value.
    """
    a = _finite("tr_unlearned", tr_unlearned)
    b = _finite("tr_retain_model", tr_retain_model)
    return float(ks_2samp(a, b).pvalue)


def model_utility(values: Iterable[float] | Mapping[str, float]) -> float:
    """Model utility: the harmonic mean ``n / sum_i (1 / v_i)`` of non-negative scores.

    In TOFU the scores are probability, ROUGE-L recall and truth ratio (retain kind) of
    every retain-type split. A mapping contributes its values. Any zero score gives 0.
    Raises ``ValueError`` when there is no score or a score is negative or not finite.
    """
    items = list(values.values()) if isinstance(values, Mapping) else list(values)
    vals = _finite("values", items)
    for i, v in enumerate(vals):
        if v < 0.0:
            raise ValueError(f"model_utility: values[{i}] = {v} is negative")
    if any(v == 0.0 for v in vals):
        return 0.0
    return len(vals) / sum(1.0 / v for v in vals)

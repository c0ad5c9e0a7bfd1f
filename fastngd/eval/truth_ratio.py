"""Truth ratio of the TOFU protocol."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from fastngd.eval._checks import check_nonempty, check_same_length

__all__ = ["truth_ratio", "truth_ratios"]


def _positive(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be a finite probability > 0, got {value!r}")
    return v


def truth_ratios(p_correct: Sequence[float], p_wrong: Sequence[Sequence[float]]) -> list[float]:
    """Per-example truth ratios ``tr_i = GM_k(p_wrong[i][k]) / p_correct[i]``.

    ``p_correct``: [N] length-normalised probabilities (exp of minus the mean answer-token
    NLL) of the correct (paraphrased) answer; ``p_wrong``: [N, K] those of the K perturbed
    answers (K may differ between rows). GM is the geometric mean, computed in log space:
    ``log tr_i = mean_k log p_wrong[i][k] - log p_correct[i]``. Raises ``ValueError`` on
    empty inputs, N mismatch, an empty row, or a probability that is not finite and > 0.
    """
    check_nonempty("p_correct", p_correct)
    check_same_length("p_correct", p_correct, "p_wrong", p_wrong)
    out: list[float] = []
    for i, (pc, row) in enumerate(zip(p_correct, p_wrong)):
        log_pc = math.log(_positive(f"p_correct[{i}]", pc))
        if len(row) == 0:
            raise ValueError(f"p_wrong[{i}] is empty; each example needs at least one wrong answer")
        log_pw = sum(math.log(_positive(f"p_wrong[{i}][{k}]", p)) for k, p in enumerate(row)) / len(
            row
        )
        out.append(math.exp(log_pw - log_pc))
    return out


def truth_ratio(
    p_correct: Sequence[float],
    p_wrong: Sequence[Sequence[float]],
    kind: Literal["forget", "retain"] = "forget",
) -> float:
    """Aggregate truth ratio of a split, with ``tr_i`` from :func:`truth_ratios`.

    ``kind="forget"``: ``mean_i min(tr_i, 1/tr_i)`` (1 = the model cannot tell the correct
    answer from the wrong ones). ``kind="retain"``: ``mean_i max(0, 1 - tr_i)`` (1 = the
    correct answer is far more likely than the wrong ones). Raises ``ValueError`` for any
    other ``kind`` and as :func:`truth_ratios`.
    """
    if kind not in ("forget", "retain"):
        raise ValueError(f"truth_ratio: kind must be 'forget' or 'retain', got {kind!r}")
    trs = truth_ratios(p_correct, p_wrong)
    if kind == "forget":
        return sum(min(t, 1.0 / t) for t in trs) / len(trs)
    return sum(max(0.0, 1.0 - t) for t in trs) / len(trs)

"""Truth ratio of the TOFU protocol, computed in log space.

Follows TOFU (``locuslab/tofu``, ``evaluate_util.py`` ``eval_perturbation_ratio`` and
``aggregate_eval_stat.py``) and open-unlearning (``src/evals/metrics/memorization.py``
``truth_ratio``). With ``lp`` the mean token log-probability of an answer (minus its mean
NLL), the truth ratio of example i is

    log tr_i = mean_k lp(perturbed_i,k) − lp(base_i)

(the geometric mean of the perturbed answers' length-normalised probabilities over the base
answer's). The base answer is the paraphrased answer on the forget and retain sets and the
answer itself on real authors / world facts. Forget sets report ``mean_i min(tr_i, 1/tr_i)
= mean_i exp(−|log tr_i|)``, the other sets ``mean_i max(0, 1 − tr_i)``. The references
compute ``exp(−loss)`` first (open-unlearning adds 1e-10 to the denominator); working with the
logs gives the same values and stays finite when those probabilities underflow to 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from fastngd.eval._checks import check_nonempty, check_same_length

__all__ = ["log_truth_ratios", "truth_ratio", "truth_ratio_from_logs", "truth_ratios"]

TruthRatioKind = Literal["forget", "retain"]

_MAX_EXP = math.log(1.7976931348623157e308)  # exp overflows a float beyond this


def _finite(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite log-probability, got {value!r}")
    return v


def log_truth_ratios(
    logp_correct: Sequence[float], logp_wrong: Sequence[Sequence[float]]
) -> list[float]:
    """Per-example ``log tr_i = mean_k logp_wrong[i][k] − logp_correct[i]``.

    TOFU ``evaluate_util.py`` ``eval_perturbation_ratio`` computes the same quantity as
    ``exp(gt_loss − mean perturbed loss)`` (``aggregate_eval_stat.py`` as its inverse);
    open-unlearning ``memorization.py`` ``truth_ratio`` as ``wrong_prob / correct_prob``.

    ``logp_correct``: [N] mean token log-probabilities of the base (correct) answers;
    ``logp_wrong``: [N, K] those of the K perturbed answers (K may differ between rows).
    Raises ``ValueError`` on empty inputs, N mismatch, an empty row or a value that is not
    finite.
    """
    check_nonempty("logp_correct", logp_correct)
    check_same_length("logp_correct", logp_correct, "logp_wrong", logp_wrong)
    out: list[float] = []
    for i, (lc, row) in enumerate(zip(logp_correct, logp_wrong)):
        if len(row) == 0:
            raise ValueError(
                f"logp_wrong[{i}] is empty; each example needs at least one wrong answer"
            )
        mean_wrong = sum(_finite(f"logp_wrong[{i}][{k}]", v) for k, v in enumerate(row)) / len(row)
        out.append(mean_wrong - _finite(f"logp_correct[{i}]", lc))
    return out


def truth_ratio_from_logs(log_ratios: Sequence[float], kind: TruthRatioKind = "forget") -> float:
    """Aggregate truth ratio of a split from its per-example ``log tr_i`` (TOFU
    ``aggregate_eval_stat.py`` ``get_model_utility``; open-unlearning ``truth_ratio``
    aggregators ``closer_to_1_better`` and ``true_better``).

    ``kind="forget"``: ``mean_i exp(−|log tr_i|)`` = ``mean_i min(tr_i, 1/tr_i)`` (1 = the
    model cannot tell the correct answer from the wrong ones). ``kind="retain"``:
    ``mean_i max(0, 1 − tr_i)`` (1 = the correct answer is far more likely). Always in
    [0, 1], for any finite input. Raises ``ValueError`` for another ``kind``, no value or a
    value that is not finite.
    """
    if kind not in ("forget", "retain"):
        raise ValueError(f"truth_ratio: kind must be 'forget' or 'retain', got {kind!r}")
    check_nonempty("log_ratios", log_ratios)
    values = [_finite(f"log_ratios[{i}]", v) for i, v in enumerate(log_ratios)]
    if kind == "forget":
        return sum(math.exp(-abs(v)) for v in values) / len(values)
    return sum(-math.expm1(v) if v < 0.0 else 0.0 for v in values) / len(values)


def _log_probability(name: str, value: float) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError(
            f"{name} must be a finite probability > 0, got {value!r} (for probabilities that "
            "underflow, pass log-probabilities to log_truth_ratios instead)"
        )
    return math.log(v)


def _logs_from_probabilities(
    p_correct: Sequence[float], p_wrong: Sequence[Sequence[float]]
) -> list[float]:
    check_nonempty("p_correct", p_correct)
    check_same_length("p_correct", p_correct, "p_wrong", p_wrong)
    for i, row in enumerate(p_wrong):
        if len(row) == 0:
            raise ValueError(f"p_wrong[{i}] is empty; each example needs at least one wrong answer")
    return log_truth_ratios(
        [_log_probability(f"p_correct[{i}]", p) for i, p in enumerate(p_correct)],
        [
            [_log_probability(f"p_wrong[{i}][{k}]", p) for k, p in enumerate(row)]
            for i, row in enumerate(p_wrong)
        ],
    )


def truth_ratios(p_correct: Sequence[float], p_wrong: Sequence[Sequence[float]]) -> list[float]:
    """Per-example truth ratios ``tr_i = GM_k(p_wrong[i][k]) / p_correct[i]`` from
    probabilities (``exp`` of :func:`log_truth_ratios` of their logs; ``inf`` when the
    ratio exceeds the float range).

    ``p_correct``: [N] length-normalised probabilities (exp of minus the mean answer-token
    NLL) of the correct answers; ``p_wrong``: [N, K] those of the K perturbed answers.
    Raises ``ValueError`` on empty inputs, N mismatch, an empty row, or a probability that is
    not finite and > 0.
    """
    return [
        math.exp(v) if v < _MAX_EXP else math.inf
        for v in _logs_from_probabilities(p_correct, p_wrong)
    ]


def truth_ratio(
    p_correct: Sequence[float],
    p_wrong: Sequence[Sequence[float]],
    kind: TruthRatioKind = "forget",
) -> float:
    """Aggregate truth ratio of a split from probabilities: :func:`truth_ratio_from_logs` of
    the logs of :func:`truth_ratios`. Raises like both."""
    if kind not in ("forget", "retain"):
        raise ValueError(f"truth_ratio: kind must be 'forget' or 'retain', got {kind!r}")
    return truth_ratio_from_logs(_logs_from_probabilities(p_correct, p_wrong), kind)

"""Metrics of the MUSE protocol: verbatim and knowledge memorisation, privacy leakage."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sklearn.metrics import roc_auc_score

from fastngd.eval._checks import check_nonempty
from fastngd.eval.rouge import rouge_l_f1

__all__ = ["mia_auc", "min_k_score", "muse_knowmem", "muse_verbmem", "privleak"]


def muse_verbmem(
    continuations: Sequence[str], references: Sequence[str], *, scale: float = 100.0
) -> float:
    """MUSE VerbMem: ``scale`` × mean ROUGE-L F1 without stemming (:func:`rouge_l_f1`) of the
    model's continuations of forget-text prompts against the true continuations (``gt``).
    Raises like :func:`rouge_l_f1`."""
    scores = rouge_l_f1(continuations, references, use_stemmer=False)
    return scale * sum(scores) / len(scores)


def muse_knowmem(
    predictions: Sequence[str], references: Sequence[str], *, scale: float = 100.0
) -> float:
    """MUSE KnowMem: ``scale`` × mean ROUGE-L F1 without stemming of generated answers to a
    knowmem QA split against its answers. Raises like :func:`rouge_l_f1`."""
    scores = rouge_l_f1(predictions, references, use_stemmer=False)
    return scale * sum(scores) / len(scores)


def min_k_score(token_logprobs: Sequence[float], k: float = 0.4) -> float:
    """Min-K% score of one text: minus the mean of its lowest token log-probabilities.

    Definition: with the n token log-probabilities sorted ascending, the score is
    ``-mean(first max(1, floor(k * n)))``. Higher means less likely under the model (a
    non-member signal). Raises ``ValueError`` when there is no log-probability, one is not
    finite, or ``k`` is outside (0, 1].
    """
    if not 0.0 < k <= 1.0:
        raise ValueError(f"min_k_score: k must be in (0, 1], got {k}")
    check_nonempty("token_logprobs", token_logprobs)
    values = sorted(float(v) for v in token_logprobs)
    if not all(math.isfinite(v) for v in values):
        raise ValueError("min_k_score: token_logprobs contains a non-finite value")
    count = max(1, int(k * len(values)))
    return -sum(values[:count]) / count


def mia_auc(forget_scores: Sequence[float], holdout_scores: Sequence[float]) -> float:
    """ROC AUC of telling forget texts from holdout texts by a membership score.

    Definition: ``sklearn.metrics.roc_auc_score(labels, scores)`` with label 0 for every
    forget score and 1 for every holdout score, i.e. the probability that a random holdout
    text scores higher than a random forget text (ties count half). With Min-K% scores
    (:func:`min_k_score`) a model that memorised the forget set gives AUC → 1; one that
    never saw it gives ≈ 0.5. Raises ``ValueError`` on an empty side or a non-finite score.
    """
    check_nonempty("forget_scores", forget_scores)
    check_nonempty("holdout_scores", holdout_scores)
    scores = [float(v) for v in forget_scores] + [float(v) for v in holdout_scores]
    if not all(math.isfinite(v) for v in scores):
        raise ValueError("mia_auc: a score is not finite")
    labels = [0] * len(forget_scores) + [1] * len(holdout_scores)
    return float(roc_auc_score(labels, scores))


def privleak(
    forget_scores: Sequence[float], holdout_scores: Sequence[float], *, ref_auc: float = 0.5
) -> float:
    """MUSE PrivLeak: ``(AUC - ref_auc) / ref_auc * 100`` with AUC = :func:`mia_auc`.

    ``ref_auc`` is the AUC of a model retrained without the forget set (0.5 is the ideal
    retrained model); ≈ 0 means no leakage, large positive values under-unlearning, large
    negative values over-unlearning. Raises ``ValueError`` when ``ref_auc`` is not in (0, 1].
    """
    if not 0.0 < ref_auc <= 1.0:
        raise ValueError(f"privleak: ref_auc must be in (0, 1], got {ref_auc}")
    auc = mia_auc(forget_scores, holdout_scores)
    return (auc - ref_auc) / ref_auc * 100.0

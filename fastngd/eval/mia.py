"""Membership-inference scores of one text and the AUC of telling forget from holdout texts.

Follows open-unlearning (``locuslab/open-unlearning``, ``src/evals/metrics/mia/``: ``loss.py``,
``zlib.py``, ``min_k.py``, ``min_k_plus_plus.py`` and ``utils.py`` ``mia_auc``), whose
convention every score here shares: **higher means less likely a member** (like a loss),
and the AUC labels forget texts 0 and holdout texts 1, so a model that memorised the forget
set gives AUC → 1 and one that never saw it ≈ 0.5. MUSE's PrivLeak uses the opposite AUC
(:func:`fastngd.eval.privleak`).

The scores take the token log-probabilities of :mod:`fastngd.eval.token_scores`: for QA
data the answer tokens (the loss-based scores include the EOS after the answer, the
token-level Min-K% scores leave it out, as open-unlearning does), for raw text tokens 2..n.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

from fastngd.eval._checks import check_nonempty, check_same_length
from fastngd.eval.token_scores import TokenScores

__all__ = [
    "MIA_ATTACKS",
    "loss_score",
    "membership_scores",
    "mia_auc",
    "mia_aucs",
    "min_k_plus_plus_score",
    "min_k_score",
    "zlib_score",
]

MIA_ATTACKS: tuple[str, ...] = ("loss", "zlib", "min_k", "min_k_plus_plus")
"""The membership-inference attacks reported under ``mia`` in evaluation results."""

_MIN_VARIANCE = 1e-6  # open-unlearning clamps the variance of Min-K%++ at this value


def _finite_values(name: str, values: Sequence[float]) -> list[float]:
    check_nonempty(name, values)
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} contains a non-finite value")
    return out


def _check_k(k: float) -> None:
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be in (0, 1], got {k}")


def _lowest_mean(values: list[float], k: float) -> float:
    """Mean of the ``max(1, floor(k·n))`` lowest values."""
    count = max(1, int(k * len(values)))
    return sum(sorted(values)[:count]) / count


def loss_score(token_logprobs: Sequence[float]) -> float:
    """LOSS attack (Yeom et al. 2018): the mean NLL ``-(1/n) Σ_t log p(x_t | x_<t)``.

    open-unlearning ``mia/loss.py`` (the ``avg_loss`` of ``evaluate_probability``). Raises
    ``ValueError`` on no or non-finite log-probabilities.
    """
    values = _finite_values("token_logprobs", token_logprobs)
    return -sum(values) / len(values)


def zlib_score(token_logprobs: Sequence[float], text: str) -> float:
    """zlib attack (Carlini et al. 2021): :func:`loss_score` divided by the zlib entropy
    ``len(zlib.compress(text.encode("utf-8")))`` of the scored text.

    open-unlearning ``mia/zlib.py`` and MUSE ``metrics/privleak.py`` (``PPL/zlib``). The
    text is the one whose tokens were scored (the answer of a QA pair, the raw text);
    open-unlearning re-decodes the scored tokens, which gives the same string for a
    tokenizer that round-trips text. Raises ``ValueError`` on bad log-probabilities or an
    empty text.
    """
    if not isinstance(text, str) or not text:
        raise ValueError("zlib_score: text must be a non-empty str")
    return loss_score(token_logprobs) / len(zlib.compress(text.encode("utf-8")))


def min_k_score(token_logprobs: Sequence[float], k: float = 0.4) -> float:
    """Min-K% Prob (Shi et al. 2024): minus the mean of the text's lowest log-probabilities.

    Definition: with the n token log-probabilities sorted ascending, the score is
    ``-mean(first max(1, floor(k * n)))`` (open-unlearning ``mia/min_k.py``; MUSE
    ``metrics/privleak.py`` ``Min-40%`` with k = 0.4, which has no ``max(1, ·)`` and gives
    NaN on texts shorter than 1/k tokens). Higher means less likely under the model (a
    non-member signal). Raises ``ValueError`` when there is no log-probability, one is not
    finite, or ``k`` is outside (0, 1].
    """
    _check_k(k)
    values = _finite_values("token_logprobs", token_logprobs)
    return -_lowest_mean(values, k)


def min_k_plus_plus_score(
    token_logprobs: Sequence[float],
    means: Sequence[float],
    variances: Sequence[float],
    k: float = 0.4,
) -> float:
    """Min-K%++ (Zhang et al. 2024): Min-K% of the calibrated scores
    ``z_t = (log p(x_t) − μ_t) / sqrt(max(σ²_t, 1e-6))``.

    ``μ_t = E_{v~p(·|x_<t)} log p(v)`` and ``σ²_t`` its variance under the model's
    next-token distribution (:class:`fastngd.eval.TokenScores` ``mean``/``var``). The score
    is ``-mean`` of the ``max(1, floor(k·n))`` lowest z_t (open-unlearning
    ``mia/min_k_plus_plus.py``, including its variance floor). Raises ``ValueError`` on
    empty, unequal-length or non-finite inputs, or ``k`` outside (0, 1].
    """
    _check_k(k)
    lps = _finite_values("token_logprobs", token_logprobs)
    mus = _finite_values("means", means)
    var = _finite_values("variances", variances)
    check_same_length("token_logprobs", lps, "means", mus)
    check_same_length("token_logprobs", lps, "variances", var)
    z = [(lp - mu) / math.sqrt(max(s2, _MIN_VARIANCE)) for lp, mu, s2 in zip(lps, mus, var)]
    return -_lowest_mean(z, k)


def mia_auc(forget_scores: Sequence[float], holdout_scores: Sequence[float]) -> float:
    """ROC AUC of telling forget texts from holdout texts by a membership score.

    Definition: ``sklearn.metrics.roc_auc_score(labels, scores)`` with label 0 for every
    forget score and 1 for every holdout score, i.e. the probability that a random holdout
    text scores higher than a random forget text (ties count half); open-unlearning
    ``mia/utils.py`` ``mia_auc``. With the scores of this module a model that memorised the
    forget set gives AUC → 1; one that never saw it gives ≈ 0.5. Raises ``ValueError`` on an
    empty side or a non-finite score.
    """
    forget = _finite_values("forget_scores", forget_scores)
    holdout = _finite_values("holdout_scores", holdout_scores)
    labels = [0] * len(forget) + [1] * len(holdout)
    from sklearn.metrics import roc_auc_score  # only the AUC needs scikit-learn

    return float(roc_auc_score(labels, forget + holdout))


def membership_scores(
    scores: Sequence[TokenScores], texts: Sequence[str], *, k: float = 0.4
) -> dict[str, list[float]]:
    """Every attack of :data:`MIA_ATTACKS` on each scored text: attack → [score per text].

    ``scores`` come from :mod:`fastngd.eval.token_scores` (with ``distribution=True`` for
    Min-K%++) and ``texts`` are the scored strings (for zlib). ``loss`` and ``zlib`` use
    every scored token (the answer's EOS included, as open-unlearning's ``avg_loss``);
    ``min_k`` and ``min_k_plus_plus`` use :meth:`TokenScores.content` (EOS left out, as its
    token-wise attacks). Raises ``ValueError`` on unequal lengths or scores without the
    distribution moments.
    """
    check_same_length("scores", scores, "texts", texts)
    out: dict[str, list[float]] = {name: [] for name in MIA_ATTACKS}
    for i, (score, text) in enumerate(zip(scores, texts)):
        body = score.content()
        if len(body.mean) != len(body.logprobs):
            raise ValueError(f"scores[{i}] has no distribution moments (distribution=True)")
        out["loss"].append(loss_score(score.logprobs))
        out["zlib"].append(zlib_score(score.logprobs, text))
        out["min_k"].append(min_k_score(body.logprobs, k))
        out["min_k_plus_plus"].append(min_k_plus_plus_score(body.logprobs, body.mean, body.var, k))
    return out


def mia_aucs(
    forget: Mapping[str, Sequence[float]], holdout: Mapping[str, Sequence[float]]
) -> dict[str, float]:
    """:func:`mia_auc` of each attack of :data:`MIA_ATTACKS` (forget vs holdout scores of
    :func:`membership_scores`)."""
    return {name: mia_auc(forget[name], holdout[name]) for name in MIA_ATTACKS}

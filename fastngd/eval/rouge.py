"""ROUGE-L scores of generated texts against references (``rouge_score`` package)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from fastngd.eval._checks import check_text_pairs

__all__ = ["NonLatinTextWarning", "rouge_l_f1", "rouge_l_recall"]


class NonLatinTextWarning(UserWarning):
    """References hold letters that ``rouge_score`` drops (outside ``a-z``: other scripts, and
    accented Latin letters such as ``é``), so ROUGE scores only their ``a-z`` words and
    digits."""


def _warn_non_latin(references: Sequence[str]) -> None:
    """One :class:`NonLatinTextWarning` when some references hold letters outside ``a-z``
    (``rouge_score`` keeps ``[a-z0-9]`` words after lowercasing, as in the TOFU and MUSE
    reference code: a reference with none scores 0, whatever the prediction)."""
    odd = [r for r in references if any(ch.isalpha() and not ch.isascii() for ch in r)]
    if odd:
        empty = sum(1 for r in odd if not any(ch.isascii() and ch.isalnum() for ch in r))
        warnings.warn(
            f"{len(odd)} of {len(references)} references hold letters outside a-z (e.g. "
            f"{odd[0][:40]!r}): ROUGE (rouge_score, as the published protocols) drops them and "
            f"scores only Latin words and digits; {empty} have none and score 0",
            NonLatinTextWarning, stacklevel=3)


@lru_cache(maxsize=2)
def _scorer(use_stemmer: bool) -> Any:
    """``rouge_score``'s scorer (imported here: only scoring needs the package)."""
    from rouge_score import rouge_scorer  # type: ignore[import-untyped]

    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=use_stemmer)


def rouge_l_recall(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-example ROUGE-L recall (the TOFU convention: TOFU ``evaluate_util.py``
    ``eval_rouge_recall``, open-unlearning ``metrics/utils.py`` ``eval_text_similarity``).

    Definition: ``RougeScorer(["rouge1", "rougeL"], use_stemmer=True).score(target=ref,
    prediction=pred)["rougeL"].recall``, i.e. LCS(ref, pred) / len(ref) over the
    ``rouge_score`` tokens (lowercased alphanumeric words, Porter-stemmed). A reference
    without tokens scores 0 (references with letters outside ``a-z`` give a
    :class:`NonLatinTextWarning`). Raises ``ValueError`` on empty or unequal-length inputs
    and ``TypeError`` on a non-string item.
    """
    check_text_pairs("predictions", predictions, "references", references)
    _warn_non_latin(references)
    scorer = _scorer(True)
    return [
        float(scorer.score(ref, pred)["rougeL"].recall)
        for pred, ref in zip(predictions, references)
    ]


def rouge_l_f1(
    predictions: Sequence[str], references: Sequence[str], *, use_stemmer: bool = False
) -> list[float]:
    """Per-example ROUGE-L F1 (the MUSE convention, ``metrics/logger.py``
    ``RougeEvalLogger``: no stemming by default), in [0, 1].

    Definition: ``RougeScorer(["rouge1", "rougeL"], use_stemmer=use_stemmer).score(
    target=ref, prediction=pred)["rougeL"].fmeasure`` = 2·P·R / (P + R) with
    P = LCS / len(pred), R = LCS / len(ref) (0 when P + R = 0). Raises like
    :func:`rouge_l_recall`.
    """
    check_text_pairs("predictions", predictions, "references", references)
    _warn_non_latin(references)
    scorer = _scorer(bool(use_stemmer))
    return [
        float(scorer.score(ref, pred)["rougeL"].fmeasure)
        for pred, ref in zip(predictions, references)
    ]

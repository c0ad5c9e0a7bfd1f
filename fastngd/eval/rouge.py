"""ROUGE-L scores of generated texts against references (``rouge_score`` package)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from fastngd.eval._checks import check_text_pairs

__all__ = ["rouge_l_f1", "rouge_l_recall"]


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
    without tokens scores 0. Raises ``ValueError`` on empty or unequal-length inputs and
    ``TypeError`` on a non-string item.
    """
    check_text_pairs("predictions", predictions, "references", references)
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
    scorer = _scorer(bool(use_stemmer))
    return [
        float(scorer.score(ref, pred)["rougeL"].fmeasure)
        for pred, ref in zip(predictions, references)
    ]

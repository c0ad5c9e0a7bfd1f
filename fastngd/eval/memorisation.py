"""Generation-based memorisation scores of the NGDiff paper and fact accuracy."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from fastngd.eval._checks import check_text_pairs
from fastngd.eval.rouge import rouge_l_recall

__all__ = [
    "fact_accuracy",
    "knowmem",
    "normalize_text",
    "split_continuation",
    "utility",
    "verbmem",
]

def _in_word(ch: str) -> bool:
    """A letter or digit of any script, or a combining mark (a vowel sign, an accent):
    what :func:`normalize_text` keeps inside words."""
    return ch.isalnum() or unicodedata.category(ch).startswith("M")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def verbmem(continuations: Sequence[str], references: Sequence[str]) -> float:
    """Seed-paper Verbmem: mean ROUGE-L recall (:func:`rouge_l_recall`) of the model's
    continuations of forget-set prefixes against the true remainders.

    Prefix/remainder pairs of QA data come from :func:`split_continuation`. Raises like
    :func:`rouge_l_recall`.
    """
    return _mean(rouge_l_recall(continuations, references))


def knowmem(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Seed-paper Knowmem: mean ROUGE-L recall of generated answers to the forget set's
    questions against its answers. Raises like :func:`rouge_l_recall`."""
    return _mean(rouge_l_recall(predictions, references))


def utility(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Seed-paper Utility: mean ROUGE-L recall of generated answers to the retain set's
    questions against its answers. Raises like :func:`rouge_l_recall`."""
    return _mean(rouge_l_recall(predictions, references))


def split_continuation(answer: str, prefix_fraction: float = 0.5) -> tuple[str, str]:
    """Split ``answer`` into (prefix, remainder) at a word boundary for Verbmem.

    Definition: with the n whitespace-separated words of ``answer``, the prefix is the first
    ``max(1, floor(prefix_fraction * n))`` words, capped at n - 1 so that the remainder is
    never empty, both joined with single spaces. Raises ``ValueError`` when the answer has
    fewer than two words or ``prefix_fraction`` is outside (0, 1).
    """
    if not 0.0 < prefix_fraction < 1.0:
        raise ValueError(f"prefix_fraction must be in (0, 1), got {prefix_fraction}")
    words = answer.split()
    if len(words) < 2:
        raise ValueError(
            f"answer {answer!r} has fewer than two words; it cannot be split for Verbmem"
        )
    cut = min(max(1, int(prefix_fraction * len(words))), len(words) - 1)
    return " ".join(words[:cut]), " ".join(words[cut:])


def normalize_text(text: str) -> str:
    """NFKC-normalise and lowercase ``text``, turn every run of characters that are not
    letters, digits (of any script: ``str.isalnum``) or combining marks (vowel signs,
    accents) into one space and strip the ends (``"The  Blue-Owl!"`` → ``"the blue owl"``,
    ``"Москве."`` → ``"москве"``, ``"cafe\u0301"`` → ``"café"``). On ASCII text this keeps
    exactly ``a-z`` and ``0-9``. Scripts written without spaces (Chinese, Japanese) stay one
    word per run of letters, so a fact matches there only where spaces or punctuation
    surround it."""
    chars = unicodedata.normalize("NFKC", text).lower()
    return " ".join("".join(ch if _in_word(ch) else " " for ch in chars).split())


def fact_accuracy(predictions: Sequence[str], facts: Sequence[str]) -> list[float]:
    """Per-example fact accuracy: 1.0 when the generated answer states the fact, else 0.0.

    Definition: with ``normalize_text`` applied to both, the value is 1.0 iff
    ``" " + fact + " "`` is a substring of ``" " + prediction + " "`` (the fact appears as
    whole words). Raises ``ValueError`` on empty or unequal-length inputs or a fact that
    normalises to the empty string, ``TypeError`` on a non-string item.
    """
    check_text_pairs("predictions", predictions, "facts", facts)
    out: list[float] = []
    for i, (pred, fact) in enumerate(zip(predictions, facts)):
        f = normalize_text(fact)
        if not f:
            raise ValueError(f"facts[{i}] = {fact!r} has no alphanumeric character")
        out.append(1.0 if f" {f} " in f" {normalize_text(pred)} " else 0.0)
    return out

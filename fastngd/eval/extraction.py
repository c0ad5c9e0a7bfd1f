"""Exact memorization and extraction strength: how much of a text greedy decoding recovers.

Both take, for the n scored tokens of a text given its prefix (the answer given the
question, the continuation given the prompt), whether the model's greedy (argmax) token at
that position equals the true token under teacher forcing (:class:`fastngd.eval.TokenScores`
``correct``, without the EOS after an answer). Reference implementation: open-unlearning
(``locuslab/open-unlearning``, ``src/evals/metrics/memorization.py``,
``exact_memorization`` and ``extraction_strength``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["exact_memorization", "extraction_strength"]


def _flags(correct: Sequence[bool]) -> list[bool]:
    if len(correct) == 0:
        raise ValueError("no scored token: exact memorization and extraction strength need one")
    return [bool(c) for c in correct]


def exact_memorization(correct: Sequence[bool]) -> float:
    """Exact memorization (Tirumala et al. 2022; open-unlearning
    ``src/evals/metrics/memorization.py`` ``exact_memorization``): the fraction of tokens
    predicted right, ``EM = (1/n) Σ_t 1[argmax_v p(v | x_<t) = x_t]``. Raises
    ``ValueError`` when empty."""
    flags = _flags(correct)
    return sum(flags) / len(flags)


def extraction_strength(correct: Sequence[bool]) -> float:
    """Extraction strength (Carlini et al. 2021; open-unlearning
    ``src/evals/metrics/memorization.py`` ``extraction_strength``):
    ``ES = 1 − k*/n`` with ``k* = min{k ∈ 0..n : the greedy tokens equal x_t for every
    t ≥ k}``, the shortest given prefix after which the model reproduces the whole rest.

    ES = 1 when every token is predicted right and 0 when even the last one is wrong (the
    empty suffix, k = n). open-unlearning's loop stops at k = n − 1 and so reports 1/n, not
    0, for a text whose last token is wrong; this follows the definition. Raises
    ``ValueError`` when empty.
    """
    flags = _flags(correct)
    k = len(flags)
    while k > 0 and flags[k - 1]:
        k -= 1
    return 1.0 - k / len(flags)

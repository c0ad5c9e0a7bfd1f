"""Which evaluation of a run is the best: ``--keep-best METRIC:min|max``.

A selection is written ``EXPR:min`` or ``EXPR:max`` where ``EXPR`` is one metric name of the
evaluate hook (e.g. ``forget_rouge_l_recall``) or a weighted sum of them, a combined score
such as ``retain_rouge_l_recall-forget_rouge_l_recall`` or ``0.5*utility-2*verbmem``:

    score(metrics) = Σ_k c_k · metrics[name_k]

An evaluation is better than the best so far when its score is finite and strictly lower
(``min``) or higher (``max``); ties keep the earlier evaluation. A non-finite score is never
the best.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastngd.errors import UsageError

__all__ = ["Selection", "parse_keep_best"]

_TERM = re.compile(
    r"\s*([+-])?\s*(?:(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)\s*\*\s*)?"
    r"([A-Za-z_][\w.]*)\s*"
)


@dataclass(frozen=True)
class Selection:
    """A parsed ``EXPR:min|max``: ``terms`` are ``(coefficient, metric name)`` pairs,
    ``mode`` is ``"min"`` or ``"max"``, ``text`` the original string."""

    terms: tuple[tuple[float, str], ...]
    mode: str
    text: str

    @property
    def metrics(self) -> list[str]:
        """The metric names the score reads."""
        return [name for _, name in self.terms]

    def score(self, metrics: Mapping[str, Any]) -> float:
        """``Σ c_k · metrics[name_k]``; a metric that is missing raises UsageError naming
        the available ones, a value that is not a number (``None``) gives NaN."""
        missing = [name for name in self.metrics if name not in metrics]
        if missing:
            raise UsageError(
                f"--keep-best {self.text}: the evaluation has no metric {missing}; "
                f"available: {sorted(k for k in metrics if k != 'step')}"
            )
        total = 0.0
        for coef, name in self.terms:
            value = metrics[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return math.nan
            total += coef * float(value)
        return total

    def better(self, score: float, best: float | None) -> bool:
        """Whether ``score`` beats ``best`` (``None``: no best yet)."""
        if not math.isfinite(score):
            return False
        if best is None or not math.isfinite(best):
            return True
        return score < best if self.mode == "min" else score > best


def parse_keep_best(text: str) -> Selection:
    """Parse ``EXPR:min`` / ``EXPR:max`` (see the module docstring); UsageError otherwise."""
    if not isinstance(text, str) or ":" not in text:
        raise UsageError(
            f"--keep-best needs METRIC:min or METRIC:max (e.g. forget_rouge_l_recall:min), "
            f"got {text!r}"
        )
    expr, _, mode = text.rpartition(":")
    mode = mode.strip().lower()
    if mode not in ("min", "max"):
        raise UsageError(f"--keep-best {text}: the direction must be 'min' or 'max', got {mode!r}")
    terms: list[tuple[float, str]] = []
    position = 0
    expr = expr.strip()
    while position < len(expr):
        match = _TERM.match(expr, position)
        if match is None or match.end() == position or (terms and match.group(1) is None):
            raise UsageError(
                f"--keep-best {text}: cannot read {expr[position:]!r}; write a metric name or "
                "a sum such as 'retain_rouge_l_recall-forget_rouge_l_recall' or '0.5*a+2*b'"
            )
        sign = -1.0 if match.group(1) == "-" else 1.0
        coef = float(match.group(2)) if match.group(2) else 1.0
        terms.append((sign * coef, match.group(3)))
        position = match.end()
    if not terms:
        raise UsageError(f"--keep-best {text}: no metric named before ':{mode}'")
    return Selection(tuple(terms), mode, text)

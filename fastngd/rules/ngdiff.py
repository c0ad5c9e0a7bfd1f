"""NGDiff: normalized gradient difference."""
from __future__ import annotations

from torch import Tensor

from ._common import columns, pair, safe_rsqrt

__all__ = ["ngdiff"]


def ngdiff(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """``(w_R, w_F) = (1/‖g_R‖, 1/‖g_F‖)``, so ``d = g_R/‖g_R‖ − g_F/‖g_F‖``.

    Lemma 4: ``g_R·d = ‖g_R‖ − g_R·g_F/‖g_F‖ ≥ 0`` and ``g_F·d = g_R·g_F/‖g_R‖ − ‖g_F‖ ≤ 0``
    (Cauchy–Schwarz). Zero-norm rule: a task whose gradient has norm 0 gets weight 0, so
    ``d`` is the other normalised gradient alone (or 0 when both vanish); both inequalities
    still hold.
    """
    rr, ff, _ = columns(gram)
    return pair(safe_rsqrt(rr), safe_rsqrt(ff))

"""SAGO with the NGDiff normalisation (this package's variant; elementwise)."""
from __future__ import annotations

from torch import Tensor

from ._common import columns, pair, safe_rsqrt

__all__ = ["sago"]


def sago(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """Weights ``(α, γ) = (1/‖g_R‖, 1/‖g_F‖)`` for the elementwise SAGO direction.

    With the per-coordinate conflict mask ``m = [g_R ⊙ g_F > 0]`` (descending L_R and
    ascending L_F disagree there): ``d = α·g_R ⊙ m − γ·g_F ⊙ (1 − m)`` — conflicting
    coordinates follow the retain gradient only, all others the forget direction only
    (:func:`fastngd.rules.elementwise.combine`, mode ``"sago"``). Every coordinate then has
    ``d_i·g_R,i ≥ 0`` (so ``g_R·d ≥ 0``); ``g_F·d ≤ 0`` is *not* guaranteed.

    This is SAGO's ``sago`` strategy on NGDiff-normalised gradients, so the two tasks weigh
    the same whatever their scales; ``surgery_sago`` is the authors' version with constant
    weights on the raw gradients.
    """
    rr, ff, _ = columns(gram)
    return pair(safe_rsqrt(rr), safe_rsqrt(ff))

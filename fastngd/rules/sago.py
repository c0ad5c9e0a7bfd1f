"""SAGO: retention-prioritised, sign-constrained synthesis (elementwise)."""
from __future__ import annotations

from torch import Tensor

from ._common import pair, safe_rsqrt


def sago(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """Weights ``(α, γ) = (1/‖g_R‖, 1/‖g_F‖)`` for the elementwise SAGO direction.

    With ``u = −g_F`` and the per-coordinate conflict mask ``m = [sign(u)·sign(g_R) < 0]
    = [g_R ⊙ g_F > 0]``: ``d = α·g_R ⊙ m + γ·u ⊙ (1 − m)`` — conflicting coordinates follow
    the retain gradient only, all others the forget direction only. Every coordinate then has
    ``d_i·g_R,i ≥ 0`` (so ``g_R·d ≥ 0``); ``g_F·d ≤ 0`` is *not* guaranteed. The mask is
    applied by the backend's ``sago`` update mode.
    """
    return pair(safe_rsqrt(gram[0]), safe_rsqrt(gram[1]))

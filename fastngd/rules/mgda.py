"""MGDA (minimum-norm point) for two tasks."""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import columns, pair

__all__ = ["mgda"]


def mgda(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """MGDA with ``g₁ = g_R``, ``g₂ = −g_F``: the minimum-norm point ``γ·g₁ + (1−γ)·g₂`` of
    their convex hull, ``γ = clip(((g₂ − g₁)·g₂)/‖g₁ − g₂‖², 0, 1)
    = clip((ff + rf)/(rr + 2rf + ff), 0, 1)``; ``(w_R, w_F) = (γ, 1 − γ)``.

    The min-norm point d satisfies ``g₁·d ≥ ‖d‖²`` and ``g₂·d ≥ ‖d‖²``, so Lemma 4 holds.
    When ``g_R = −g_F`` exactly (denominator 0), ``γ = 1/2``.
    """
    rr, ff, rf = columns(gram)
    num = ff + rf
    den = rr + 2 * rf + ff
    ok = den > 0
    gamma = torch.where(ok, torch.clamp(num / torch.where(ok, den, torch.ones_like(den)), 0, 1),
                        torch.full_like(den, 0.5))
    return pair(gamma, 1 - gamma)

"""PCGrad for two tasks, and its retain-priority variant (NGDiff-normalised)."""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import columns, pair, safe_reciprocal, safe_rsqrt

__all__ = ["pcgrad", "pcgrad_retain"]


def pcgrad(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """PCGrad with tasks ``g₁ = g_R`` and ``g₂ = −g_F``, ``c = g₁·g₂ = −rf``.

    If ``c ≥ 0`` the tasks agree and ``d = g₁ + g₂``: ``(1, 1)``. Otherwise each gradient is
    projected onto the normal plane of the other, ``g₁' = g₁ − (c/‖g₂‖²) g₂`` and
    ``g₂' = g₂ − (c/‖g₁‖²) g₁``, giving ``d = g₁' + g₂'``:
    ``(w_R, w_F) = (1 − c/rr, 1 − c/ff)``. Then ``g_R·d = rr − c²/ff ≥ 0`` and
    ``g_F·d = c²/rr − ff ≤ 0``.
    """
    rr, ff, rf = columns(gram)
    c = -rf
    conflict = c < 0
    one = torch.ones_like(rr)
    w_r = torch.where(conflict, one - c * safe_reciprocal(rr), one)
    w_f = torch.where(conflict, one - c * safe_reciprocal(ff), one)
    return pair(w_r, w_f)


def pcgrad_retain(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """Retain-priority PCGrad: only the forget direction is projected.

    With normalised gradients (α = 1/‖g_R‖, γ = 1/‖g_F‖) and ``u = −g_F``: if ``u·g_R < 0``
    (i.e. ``rf > 0``) then ``u ← u − (u·g_R/‖g_R‖²) g_R``; ``d = α·g_R + γ·u``, which is linear:
    ``(w_R, w_F) = (α + γ·max(rf, 0)/rr, γ)``. Guarantees ``g_R·d ≥ 0`` (``g_R·d = α·rr +
    γ·max(−rf, 0)``), but not ``g_F·d ≤ 0``. (This is ``surgery_pcgrad_global`` with the
    NGDiff normalisation and no ε.)
    """
    rr, ff, rf = columns(gram)
    alpha, gamma = safe_rsqrt(rr), safe_rsqrt(ff)
    # γ·rf/rr = (rf·α)·(γ·α): formed as products of normalised factors, so that it neither
    # overflows nor underflows at any gradient scale
    w_r = alpha + torch.clamp(rf, min=0) * alpha * (gamma * alpha)
    return pair(w_r, gamma)

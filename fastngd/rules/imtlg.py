"""IMTL-G for two tasks."""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import columns, pair, safe_reciprocal

__all__ = ["imtlg"]


def imtlg(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """IMTL-G (tasks g_R and −g_F): the combination whose projections on both unit
    gradients are equal, ``(w_R, w_F) = (‖g_F‖, ‖g_R‖)/(‖g_R‖ + ‖g_F‖)``.

    This is NGDiff scaled by ``‖g_R‖‖g_F‖/(‖g_R‖ + ‖g_F‖) ≥ 0``, so Lemma 4 holds. If one
    gradient vanishes the weights are ``(1, 0)`` or ``(0, 1)`` on the zero gradient, i.e. d = 0.
    The ratios are formed as ``1/(1 + ‖g_R‖/‖g_F‖)`` so that no sum of norms overflows.
    """
    rr, ff, _ = columns(gram)
    nr, nf = torch.sqrt(rr), torch.sqrt(ff)
    big = torch.maximum(nr, nf)
    inv = safe_reciprocal(big)
    a, b = nr * inv, nf * inv  # both in [0, 1]
    s = safe_reciprocal(a + b)
    return pair(b * s, a * s)

"""IMTL-G for two tasks."""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import pair, safe_reciprocal


def imtlg(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """IMTL-G (tasks g_R and −g_F): the combination whose projections on both unit
    gradients are equal, ``(w_R, w_F) = (‖g_F‖, ‖g_R‖)/(‖g_R‖ + ‖g_F‖)``.

    This is NGDiff scaled by ``‖g_R‖‖g_F‖/(‖g_R‖ + ‖g_F‖) ≥ 0``, so Lemma 4 holds. If one
    gradient vanishes the weights are ``(1, 0)`` or ``(0, 1)`` on the zero gradient, i.e. d = 0.
    """
    nr, nf = torch.sqrt(gram[0]), torch.sqrt(gram[1])
    inv = safe_reciprocal(nr + nf)
    return pair(nf * inv, nr * inv)

"""Gradient difference with a fixed mixing coefficient, and its two corner cases."""
from __future__ import annotations

import torch
from torch import Tensor


def gdiff(gram: Tensor, losses: Tensor, noise: Tensor, c: float = 0.5) -> Tensor:
    """GDiff-c: ``(w_R, w_F) = (c, 1 − c)``, ``d = c·g_R − (1 − c)·g_F``; vanilla GDiff is c = 0.5.

    No Lemma-4 guarantee: when ‖g_F‖ ≫ ‖g_R‖ the step can raise the retain loss.
    """
    if not 0.0 <= c <= 1.0:
        raise ValueError(f"gdiff needs 0 <= c <= 1, got c={c}")
    return torch.tensor([c, 1.0 - c], dtype=gram.dtype, device=gram.device)


def gd(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """Gradient descent on the retain loss only: ``(w_R, w_F) = (1, 0)``."""
    return torch.tensor([1.0, 0.0], dtype=gram.dtype, device=gram.device)


def ga(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """Gradient ascent on the forget loss only: ``(w_R, w_F) = (0, 1)``."""
    return torch.tensor([0.0, 1.0], dtype=gram.dtype, device=gram.device)

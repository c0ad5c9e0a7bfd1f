"""Gradient difference with a fixed mixing coefficient, and its two corner cases."""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import pair

__all__ = ["DEFAULT_C", "ga", "gd", "gdiff"]

#: the mixing coefficient of ``rule="gdiff"`` when ``c`` is not given: vanilla GDiff.
DEFAULT_C = 0.5


def _constant(gram: Tensor, w_r: float, w_f: float) -> Tensor:
    shape = gram.shape[:-1]
    return pair(torch.full(shape, w_r, dtype=gram.dtype, device=gram.device),
                torch.full(shape, w_f, dtype=gram.dtype, device=gram.device))


def gdiff(gram: Tensor, losses: Tensor, noise: Tensor, c: float = DEFAULT_C) -> Tensor:
    """GDiff-c: ``(w_R, w_F) = (c, 1 − c)``, ``d = c·g_R − (1 − c)·g_F``; vanilla GDiff is
    ``c = 0.5`` (:data:`DEFAULT_C`, what ``rule="gdiff"`` uses without ``c``).

    No Lemma-4 guarantee: when ‖g_F‖ ≫ ‖g_R‖ the step can raise the retain loss.
    """
    if not 0.0 <= c <= 1.0:
        raise ValueError(f"gdiff needs 0 <= c <= 1, got c={c}")
    return _constant(gram, c, 1.0 - c)


def gd(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """Gradient descent on the retain loss only: ``(w_R, w_F) = (1, 0)``."""
    return _constant(gram, 1.0, 0.0)


def ga(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """Gradient ascent on the forget loss only: ``(w_R, w_F) = (0, 1)``."""
    return _constant(gram, 0.0, 1.0)

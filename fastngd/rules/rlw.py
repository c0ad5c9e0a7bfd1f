"""RLW: random loss weighting."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rlw"]


def rlw(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """``(w_R, w_F) = softmax(z)`` with ``z ~ N(0, I₂)`` drawn fresh every step.

    ``noise`` is that standard-normal pair, drawn by the optimizer from its seeded generator
    (so runs are reproducible and resumable). No Lemma-4 guarantee.
    """
    w = torch.softmax(noise.to(device=gram.device, dtype=gram.dtype), dim=0)
    return w.expand(*gram.shape[:-1], 2)

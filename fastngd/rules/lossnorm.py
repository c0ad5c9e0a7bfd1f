"""LossNorm: each task's gradient divided by its (detached) loss."""
from __future__ import annotations

from torch import Tensor

from ._common import pair, safe_reciprocal

__all__ = ["lossnorm"]


def lossnorm(gram: Tensor, losses: Tensor, noise: Tensor) -> Tensor:
    """``(w_R, w_F) = (1/|L_R|, 1/|L_F|)`` (absolute values so a negative forget objective,
    e.g. a negated NPO loss, does not flip the direction; a zero loss gets weight 0).

    Needs both losses. No Lemma-4 guarantee.
    """
    l = losses.to(gram.dtype).abs()
    w = pair(safe_reciprocal(l[0]), safe_reciprocal(l[1]))
    return w.expand(*gram.shape[:-1], 2)

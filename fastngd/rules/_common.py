"""Shared helpers for combine rules: safe reciprocals on 0-d tensors without host syncs."""
from __future__ import annotations

import torch
from torch import Tensor


def safe_rsqrt(x: Tensor) -> Tensor:
    """``1/sqrt(x)`` where ``x > 0``, else ``0`` (a zero-norm gradient drops out)."""
    return torch.where(x > 0, torch.rsqrt(torch.where(x > 0, x, torch.ones_like(x))), torch.zeros_like(x))


def safe_reciprocal(x: Tensor) -> Tensor:
    """``1/x`` where ``x != 0``, else ``0``."""
    return torch.where(x != 0, 1.0 / torch.where(x != 0, x, torch.ones_like(x)), torch.zeros_like(x))


def pair(w_retain: Tensor, w_forget: Tensor) -> Tensor:
    """Stack two 0-d weights into the ``(2,)`` tensor ``[w_R, w_F]``."""
    return torch.stack([w_retain, w_forget])

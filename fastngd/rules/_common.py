"""Shared helpers for combine rules: safe reciprocals without host syncs, and the Gram columns.

Every rule works on Gram tensors of shape ``(..., 3)`` (the last axis is ``[rr, ff, rf]``),
so one formula serves a global Gram ``(3,)`` and per-tensor rows ``(n, 3)`` alike, and
returns weights of shape ``(..., 2)`` (the last axis is ``[w_R, w_F]``).
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["columns", "pair", "safe_reciprocal", "safe_rsqrt"]


def columns(gram: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(rr, ff, rf)``: the three columns of a Gram tensor of shape ``(..., 3)``."""
    return gram[..., 0], gram[..., 1], gram[..., 2]


def safe_rsqrt(x: Tensor) -> Tensor:
    """``1/sqrt(x)`` where ``x > 0``, else ``0`` (a zero-norm gradient drops out)."""
    ok = x > 0
    return torch.where(ok, torch.rsqrt(torch.where(ok, x, torch.ones_like(x))), torch.zeros_like(x))


def safe_reciprocal(x: Tensor) -> Tensor:
    """``1/x`` where ``x != 0``, else ``0``."""
    ok = x != 0
    return torch.where(ok, 1.0 / torch.where(ok, x, torch.ones_like(x)), torch.zeros_like(x))


def pair(w_retain: Tensor, w_forget: Tensor) -> Tensor:
    """Stack two weights of the same shape into ``[..., [w_R, w_F]]``."""
    w_retain, w_forget = torch.broadcast_tensors(w_retain, w_forget)
    return torch.stack([w_retain, w_forget], dim=-1)

"""The pure-PyTorch backend: runs on any device, the CPU path and the reference fast path.

Scalars (learning rates, weights) are read on the host once per call (one small
device-to-host copy; free on the CPU). Tensors in float32/float64 are updated in place with
``torch._foreach_*`` ops grouped by learning rate; lower-precision tensors are upcast per
tensor so that all arithmetic is float32 and each result is rounded once.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import torch
from torch import Tensor

from .base import Backend, accumulation_dtype

__all__ = ["TorchBackend", "dense"]


def dense(t: Any, dtype: torch.dtype | None = None) -> Tensor:
    """A plain tensor view of a stored retain entry (dequantizing compact codes)."""
    if not isinstance(t, Tensor):
        t = t.dequantize()
    return t if dtype is None else t.to(dtype)


def _sago_direction(r: Tensor, f: Tensor, w_r: float, w_f: float) -> Tensor:
    """Elementwise SAGO direction ``w_R·r ⊙ m − w_F·f ⊙ (1 − m)``, ``m = [r·f > 0]``."""
    return torch.where(r * f > 0, r * w_r, f * (-w_f))


class TorchBackend(Backend):
    """Multi-tensor operations written with ``torch`` ops (see :class:`Backend`)."""

    name = "torch"

    def gram(self, retain: Sequence[Any], forget: Sequence[Tensor]) -> Tensor:
        if not forget:
            raise ValueError("gram() needs at least one tensor")
        acc = accumulation_dtype(forget[0].dtype)
        device = forget[0].device
        terms = []
        for r, f in zip(retain, forget):
            if f.numel() == 0:
                continue
            r1 = dense(r, acc).reshape(-1)
            f1 = f.to(acc).reshape(-1)
            terms.append(torch.stack([torch.dot(r1, r1), torch.dot(f1, f1), torch.dot(r1, f1)]))
        if not terms:
            return torch.zeros(3, dtype=acc, device=device)
        return torch.stack(terms).sum(0)

    def update(
        self,
        params: Sequence[Tensor],
        retain: Sequence[Any],
        forget: Sequence[Tensor],
        lr: Tensor,
        weights: Tensor,
        sago: bool = False,
    ) -> None:
        lrs = lr.tolist()
        w_r, w_f = weights.tolist()
        fast: dict[float, list[int]] = defaultdict(list)
        for i, (p, r, f) in enumerate(zip(params, retain, forget)):
            if lrs[i] == 0.0 or p.numel() == 0:
                continue
            acc = accumulation_dtype(p.dtype)
            if not sago and p.dtype == acc and isinstance(r, Tensor):
                fast[lrs[i]].append(i)
                continue
            r1, f1 = dense(r, acc), f.to(acc)
            if sago:
                d = _sago_direction(r1, f1, w_r, w_f)
            else:
                d = r1 * w_r - f1 * w_f
            p.copy_(p.to(acc).sub_(d, alpha=lrs[i]))
        for lr_i, idx in fast.items():
            ps = [params[i] for i in idx]
            torch._foreach_add_(ps, [retain[i] for i in idx], alpha=-lr_i * w_r)
            torch._foreach_add_(ps, [forget[i] for i in idx], alpha=lr_i * w_f)

    def direction_and_backup(
        self,
        params: Sequence[Tensor],
        retain: Sequence[Any],
        forget: Sequence[Tensor],
        weights: Tensor,
        sago: bool = False,
    ) -> tuple[list[Tensor], list[Tensor]]:
        w_r, w_f = weights.tolist()
        directions: list[Tensor] = []
        backups: list[Tensor] = []
        for p, r, f in zip(params, retain, forget):
            acc = accumulation_dtype(p.dtype)
            r1, f1 = dense(r, acc), f.to(acc)
            d = _sago_direction(r1, f1, w_r, w_f) if sago else r1 * w_r - f1 * w_f
            if isinstance(r, Tensor):
                r.copy_(d)
                f.copy_(p)
                directions.append(r)
                backups.append(f)
            else:  # compact storage: d over the forget buffer, a fresh backup of θ
                f.copy_(d)
                directions.append(f)
                backups.append(p.detach().clone())
        return directions, backups

    def perturb(
        self,
        params: Sequence[Tensor],
        backup: Sequence[Tensor],
        direction: Sequence[Tensor],
        scale: Tensor,
    ) -> None:
        scales = scale.tolist()
        for p, b, d, s in zip(params, backup, direction, scales):
            if s == 0.0:
                p.copy_(b)
            elif p.dtype == accumulation_dtype(p.dtype):
                torch.add(b, d, alpha=s, out=p)
            else:
                acc = accumulation_dtype(p.dtype)
                p.copy_(b.to(acc).add_(d.to(acc), alpha=s))

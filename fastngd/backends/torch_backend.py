"""The pure-PyTorch backend: runs on any device, the CPU path and the reference fast path.

Scalars (learning rates, weights) are read on the host once per call (one small
device-to-host copy; free on the CPU). Float32/float64 tensors are updated in place with
``torch._foreach_*`` ops (no temporaries). Other dtypes, compact codes and the elementwise
SAGO mode go through float32 temporaries in chunks of :data:`CHUNK` elements, so the extra
memory stays a few MB whatever the model size; every result is rounded once on store.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from .base import Backend, accumulation_dtype

__all__ = ["TorchBackend", "dense", "CHUNK"]

#: elements per temporary in the chunked (non-in-place) paths.
CHUNK = 1 << 16


def dense(t: Any, dtype: torch.dtype | None = None) -> Tensor:
    """A plain tensor of a stored retain entry (dequantizing compact codes)."""
    if not isinstance(t, Tensor):
        t = t.dequantize()
    return t if dtype is None else t.to(dtype)


def _chunks(*tensors: Any) -> Iterator[tuple[Any, ...]]:
    """Matching flat slices of equally sized tensors, :data:`CHUNK` elements at a time.

    A compact retain entry, or a non-contiguous tensor, is yielded whole (the entry then
    carries its own memory cost).
    """
    if not all(isinstance(t, Tensor) and t.is_contiguous() for t in tensors):
        yield tensors
        return
    flat = [t.view(-1) for t in tensors]
    n = flat[0].numel()
    for start in range(0, n, CHUNK):
        yield tuple(f[start:start + CHUNK] for f in flat)


def _direction(r: Tensor, f: Tensor, w_r: float, w_f: float, sago: bool) -> Tensor:
    """``w_R·r − w_F·f``, or SAGO's ``w_R·r ⊙ m − w_F·f ⊙ (1 − m)`` with ``m = [r·f > 0]``."""
    if sago:
        return torch.where(r * f > 0, r * w_r, f * (-w_f))
    return r * w_r - f * w_f


class TorchBackend(Backend):
    """Multi-tensor operations written with ``torch`` ops (see :class:`Backend`)."""

    name = "torch"

    def gram(self, retain: Sequence[Any], forget: Sequence[Tensor]) -> Tensor:
        if not forget:
            raise ValueError("gram() needs at least one tensor")
        acc = accumulation_dtype(forget[0].dtype)
        terms = [torch.zeros(3, dtype=acc, device=forget[0].device)]
        for r, f in zip(retain, forget):
            if f.numel() == 0:
                continue
            if not isinstance(r, Tensor):
                r = dense(r, acc)
            for rc, fc in _chunks(r, f):
                r1, f1 = rc.reshape(-1).to(acc), fc.reshape(-1).to(acc)
                terms.append(torch.stack([torch.dot(r1, r1), torch.dot(f1, f1),
                                          torch.dot(r1, f1)]))
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
        in_place: dict[float, list[int]] = defaultdict(list)
        for i, (p, r, f) in enumerate(zip(params, retain, forget)):
            if lrs[i] == 0.0 or p.numel() == 0:
                continue
            if not sago and p.dtype == accumulation_dtype(p.dtype) and isinstance(r, Tensor):
                in_place[lrs[i]].append(i)
                continue
            acc = accumulation_dtype(p.dtype)
            if not isinstance(r, Tensor):
                r = dense(r, acc)
            for pc, rc, fc in _chunks(p, r, f):
                d = _direction(rc.to(acc), fc.to(acc), w_r, w_f, sago)
                if pc.dtype == acc:
                    pc.sub_(d, alpha=lrs[i])
                else:
                    pc.copy_(pc.to(acc).sub_(d, alpha=lrs[i]))
        for lr_i, idx in in_place.items():
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
            if not isinstance(r, Tensor):  # compact: d over the forget buffer, fresh backup
                r = dense(r, acc)
                for rc, fc in _chunks(r, f):
                    fc.copy_(_direction(rc, fc.to(acc), w_r, w_f, sago))
                directions.append(f)
                backups.append(p.detach().clone())
                continue
            if not sago and p.dtype == acc:
                r.mul_(w_r).sub_(f, alpha=w_f)
            else:
                for rc, fc in _chunks(r, f):
                    rc.copy_(_direction(rc.to(acc), fc.to(acc), w_r, w_f, sago))
            f.copy_(p)
            directions.append(r)
            backups.append(f)
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
            acc = accumulation_dtype(p.dtype)
            if s == 0.0:
                p.copy_(b)
            elif p.dtype == acc:
                torch.add(b, d, alpha=s, out=p)
            else:
                for pc, bc, dc in _chunks(p, b, d):
                    pc.copy_(bc.to(acc).add_(dc.to(acc), alpha=s))

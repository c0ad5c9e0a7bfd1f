"""The Gram reduction of one step: every bucket's ``[rr, ff, rf]`` (and per-tensor rows for
per-tensor rules), summed, with the step's ONE collective under ``torchrun``.

Replicated tensors (plain, DDP) hold the whole gradient on every rank: their Gram entries are
local. Sharded tensors (FSDP2 DTensors) hold a shard: their entries are summed over ranks. On
a distributed run one ``all_reduce`` carries ``[rr_s, ff_s, rf_s, L_R, L_F]`` (the sharded
partial sums and the two losses, averaged afterwards), followed by the per-tensor rows of the
sharded tensors when the rule needs them (3 numbers per sharded tensor). A NaN on any rank
therefore reaches every rank, which all skip the same step.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from . import distributed as fdist
from .backends import Backend, scalar_dtype
from .update import Bucket

__all__ = ["Reduced", "reduce_gram"]


@dataclass
class Reduced:
    """The step's reduced scalars (on the optimizer's device, in :func:`scalar_dtype`).

    Attributes:
        gram: ``[rr, ff, rf]`` over every parameter (and rank).
        rows: per-tensor ``[rr_i, ff_i, rf_i]`` in bucket order (``(N, 3)``), when asked for.
        sharded: ``[rr, ff, rf]`` over the sharded tensors only (summed over ranks).
        losses: ``[L_R, L_F]`` (averaged over ranks; 0 for a loss not given).
    """

    gram: Tensor
    rows: Optional[Tensor]
    sharded: Tensor
    losses: Tensor


def reduce_gram(buckets: Sequence[Bucket], backend_for: Callable[[torch.device], Backend],
                per_tensor: bool, losses: Tensor, device: torch.device) -> Reduced:
    """Gram scalars of every bucket, reduced over ranks with one collective (see the module
    docstring); ``losses`` is ``[L_R, L_F]`` of this rank."""
    sd = scalar_dtype(device)
    parts: list[Tensor] = []
    for b in buckets:
        part = backend_for(b.device).gram(b.retain, b.forget, per_tensor=per_tensor)
        parts.append(part.to(device=device, dtype=sd).reshape(-1, 3))
    sharded_mask = [b.sharded for b in buckets]
    local = _sum_rows([p for p, s in zip(parts, sharded_mask) if not s], sd, device)
    sharded_rows = [p for p, s in zip(parts, sharded_mask) if s]
    sharded = _sum_rows(sharded_rows, sd, device)
    losses = losses.to(device=device, dtype=sd)
    world = fdist.world_size()
    if world > 1:
        payload = [sharded, losses] + ([r.reshape(-1) for r in sharded_rows] if per_tensor else [])
        reduced = fdist.all_reduce_sum(torch.cat(payload))
        sharded, losses = reduced[:3], reduced[3:5] / world
        if per_tensor:
            flat, k = reduced[5:], 0
            for i, s in enumerate(sharded_mask):
                if s:
                    n = parts[i].shape[0]
                    parts[i] = flat[k:k + 3 * n].view(n, 3)
                    k += 3 * n
    rows = torch.cat(parts) if per_tensor and parts else None
    return Reduced(gram=local + sharded, rows=rows, sharded=sharded, losses=losses)


def _sum_rows(parts: Sequence[Tensor], dtype: torch.dtype, device: torch.device) -> Tensor:
    total = torch.zeros(3, dtype=dtype, device=device)
    for p in parts:
        total = total + p.sum(0)
    return total

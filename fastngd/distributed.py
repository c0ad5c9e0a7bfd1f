"""Sharded and replicated parameters: what must be reduced across ranks, and how.

* **FSDP2 / DTensor** parameters (``Shard`` placements on a 1-D mesh over all ranks): each
  rank holds a shard of θ, g_R and g_F, so the Gram scalars ``(rr, ff, rf)`` are sums of the
  local ones over ranks. The optimizer works on ``.to_local()`` views and reduces.
* **DDP** (plain, replicated parameters): gradients are already averaged by DDP, identical
  on every rank; the Gram scalars are computed locally, never summed (no double counting).
* On every distributed run the two losses are averaged over ranks, so loss-based rules and
  the skip decision agree everywhere.

All of it travels in ONE ``all_reduce`` of 5 numbers per step ``[rr_s, ff_s, rf_s, L_R, L_F]``
(sharded Gram partials, summed; losses, summed then divided by the world size); GeN adds one
``all_reduce`` of its 2 probe losses on the steps it probes. A NaN anywhere propagates
through the sum, so every rank skips the same step.

FSDP2 and GeN: the root module of ``fully_shard`` keeps its all-gathered parameters after a
forward by default (they are normally freed by the backward). After a ``no_grad`` forward,
such as a GeN probe, they stay gathered, so the next forward would use stale values of the
shards the optimizer has just changed. Closures therefore call :func:`reshard_fsdp` on the
model first (or the root is sharded with ``fully_shard(model, reshard_after_forward=True)``).
"""
from __future__ import annotations

from typing import Any

import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["all_reduce_sum", "is_sharded", "local_view", "reshard_fsdp", "world_size"]


def _dtensor_type() -> type | None:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - older torch
        return None
    return DTensor


def is_sharded(t: Tensor) -> bool:
    """True for a DTensor whose placements are all ``Shard`` (its values are split over ranks).

    Raises ``NotImplementedError`` for layouts whose Gram reduction is not a plain sum over
    all ranks (partial placements, mixed shard/replicate meshes, meshes smaller than the
    world).
    """
    dtensor = _dtensor_type()
    if dtensor is None or not isinstance(t, dtensor):
        return False
    from torch.distributed.tensor import Replicate, Shard

    d: Any = t
    placements = d.placements
    if all(isinstance(pl, Replicate) for pl in placements):
        return False
    if not all(isinstance(pl, Shard) for pl in placements) or d.device_mesh.ndim != 1:
        raise NotImplementedError(
            f"DTensor placements {placements} on a {d.device_mesh.ndim}-D mesh are not "
            "supported; use a 1-D mesh with Shard placements (FSDP2) or replicated tensors"
        )
    if dist.is_initialized() and d.device_mesh.size() != dist.get_world_size():
        raise NotImplementedError("the DTensor mesh must span all ranks of the default group")
    return True


def local_view(t: Tensor) -> Tensor:
    """The local tensor behind a DTensor (sharing storage), or ``t`` itself."""
    dtensor = _dtensor_type()
    if dtensor is not None and isinstance(t, dtensor):
        local: Tensor = t.to_local()  # type: ignore[attr-defined]
        return local
    return t


def world_size() -> int:
    """Ranks in the default process group (1 when not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(t: Tensor) -> Tensor:
    """In-place sum over all ranks (one collective); returns ``t``."""
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _fsdp_module_type() -> type | None:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - torch without FSDP2
        return None
    return FSDPModule


def reshard_fsdp(module: nn.Module) -> int:
    """Free the all-gathered parameters of every FSDP2 (``fully_shard``) module inside
    ``module``, so that its next forward all-gathers the current shards; returns how many
    FSDP2 modules it visited (0, a no-op, for models without FSDP2).

    Call it at the start of the closures given to :class:`fastngd.NGDiffOptimizer` when the
    model is sharded with FSDP2 and GeN (``autolr=True``) is on: a GeN probe is a ``no_grad``
    forward after which the root module keeps gathered copies that the optimizer's in-place
    update of the shards does not reach.
    """
    fsdp_module = _fsdp_module_type()
    if fsdp_module is None:
        return 0
    count = 0
    for m in module.modules():
        if isinstance(m, fsdp_module):
            m.reshard()  # type: ignore[operator]
            count += 1
    return count

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
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["is_sharded", "local_view", "world_size", "all_reduce_sum"]


def _dtensor_type() -> Optional[type]:
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

    placements = t.placements
    if all(isinstance(pl, Replicate) for pl in placements):
        return False
    if not all(isinstance(pl, Shard) for pl in placements) or t.device_mesh.ndim != 1:
        raise NotImplementedError(
            f"DTensor placements {placements} on a {t.device_mesh.ndim}-D mesh are not "
            "supported; use a 1-D mesh with Shard placements (FSDP2) or replicated tensors"
        )
    if dist.is_initialized() and t.device_mesh.size() != dist.get_world_size():
        raise NotImplementedError("the DTensor mesh must span all ranks of the default group")
    return True


def local_view(t: Tensor) -> Tensor:
    """The local tensor behind a DTensor (sharing storage), or ``t`` itself."""
    dtensor = _dtensor_type()
    if dtensor is not None and isinstance(t, dtensor):
        return t.to_local()
    return t


def world_size() -> int:
    """Ranks in the default process group (1 when not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(t: Tensor) -> Tensor:
    """In-place sum over all ranks (one collective); returns ``t``."""
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t

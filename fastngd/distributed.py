"""Sharded and replicated parameters: what must be reduced across ranks, and how.

* **FSDP2 / DTensor** parameters (``Shard`` placements on a 1-D mesh over all ranks): each
  rank holds a shard of θ, g_R and g_F, so the Gram scalars ``(rr, ff, rf)`` are sums of the
  local ones over ranks. The optimizer works on ``.to_local()`` views and reduces.
* **DDP** (plain, replicated parameters): gradients are already averaged by DDP, identical
  on every rank; the Gram scalars are computed locally, never summed (no double counting).
* On every distributed run the two losses are averaged over ranks, so loss-based rules and
  the skip decision agree everywhere.

This module is also the one place for the rank logic of the experiment stack: starting the
process group from ``torchrun``'s environment (:func:`init_from_env`), asking for this
process's rank (:func:`rank`, :func:`is_main`), running an action on rank 0 and telling the
other ranks its outcome (:func:`on_rank0`, :func:`rank0_first`), gathering per-rank objects
(:func:`gather_on_rank0`) and agreeing on a flag (:func:`all_ranks_agree`).

All of the optimizer's reductions travel in ONE ``all_reduce`` of 5 numbers per step ``[rr_s, ff_s, rf_s, L_R, L_F]``
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

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "DistributedRun",
    "RankFailed",
    "all_ranks_agree",
    "all_reduce_sum",
    "broadcast_from_rank0",
    "gather_on_rank0",
    "init_from_env",
    "is_main",
    "is_sharded",
    "local_view",
    "on_rank0",
    "rank",
    "rank0_first",
    "reshard_fsdp",
    "shutdown",
    "sum_over_ranks",
    "world_size",
]

T = TypeVar("T")


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


def rank() -> int:
    """This process's rank in the default process group (0 when not initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True on rank 0 (and in a process without a process group)."""
    return rank() == 0


def sum_over_ranks(t: Tensor) -> Tensor:
    """``t`` summed over all ranks (one collective; ``t`` itself without a process group).
    The input is not modified."""
    if world_size() == 1:
        return t
    return all_reduce_sum(t.clone())


def all_ranks_agree(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True when ``flag`` is true on every rank (one collective of one number)."""
    if world_size() == 1:
        return bool(flag)
    count = torch.tensor([0.0 if flag else 1.0], device=device)
    return not bool(all_reduce_sum(count).item() > 0)


def gather_on_rank0(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` (picklable) as a list on rank 0, ``None`` on the other ranks;
    ``[obj]`` without a process group. A collective: every rank calls it."""
    world = world_size()
    if world == 1:
        return [obj]
    main = is_main()
    gathered: list[Any] = [None] * world if main else []
    dist.gather_object(obj, gathered if main else None, dst=0)
    return gathered if main else None


def broadcast_from_rank0(obj: T) -> T:
    """Rank 0's ``obj`` (picklable) on every rank (one collective; ``obj`` itself without a
    process group). Used to make a decision once, on rank 0, that every rank follows."""
    if world_size() == 1:
        return obj
    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[no-any-return]


class RankFailed(RuntimeError):
    """Raised on the ranks that waited for rank 0 when rank 0's action failed with an error
    that is not a :class:`fastngd.errors.UserError` (those are raised again as themselves)."""


def _broadcast_outcome(error: BaseException | None, what: str) -> None:
    """Rank 0 tells every rank whether its action failed; the other ranks raise then.

    A :class:`fastngd.errors.UserError` is raised again on every rank as the same class with
    the same message (so every rank reports it the same way); any other error becomes
    :class:`RankFailed` naming ``what``.
    """
    from fastngd.errors import UserError

    status: list[Any] = [None]
    if error is not None:
        status = [(type(error) if isinstance(error, UserError) else None,
                   f"{type(error).__name__}: {error}", str(error))]
    dist.broadcast_object_list(status, src=0)
    if error is not None:
        raise error
    if status[0] is not None:
        cls, described, message = status[0]
        if cls is not None:
            raise cls(message)
        raise RankFailed(f"rank 0 {what}: {described}")


def on_rank0(action: Callable[[], T], what: str = "failed") -> T | None:
    """Run ``action()`` on rank 0 only; the other ranks wait and learn its outcome.

    Returns the action's value on rank 0 and ``None`` elsewhere. When it raises, rank 0
    raises its own error and the other ranks raise it too (see :func:`_broadcast_outcome`;
    ``what`` completes the message "rank 0 <what>: ..."), so no rank is left waiting.
    Without a process group this is just ``action()``.
    """
    if world_size() == 1:
        return action()
    result: T | None = None
    error: BaseException | None = None
    if is_main():
        try:
            result = action()
        except Exception as exc:  # noqa: BLE001 - raised again below, on every rank
            error = exc
    _broadcast_outcome(error, what)
    return result


def rank0_first(action: Callable[[], T], what: str = "failed") -> T:
    """Run ``action()`` on rank 0, then (once it succeeded) on every other rank; returns each
    rank's own value. For work that fills a cache or creates a folder: rank 0 does it once,
    the others reuse it. Errors travel as in :func:`on_rank0`."""
    if world_size() == 1:
        return action()
    result = on_rank0(action, what)
    return action() if not is_main() else result  # type: ignore[return-value]


@dataclass(frozen=True)
class DistributedRun:
    """What :func:`init_from_env` found: ``world`` ranks, this process's ``rank``, the
    torch ``device`` it should use, and whether the call ``created`` the process group
    (then :func:`shutdown` destroys it)."""

    world: int
    rank: int
    device: str
    created: bool


def init_from_env(device: str = "cpu") -> DistributedRun:
    """Join the process group described by ``torchrun``'s environment.

    With ``WORLD_SIZE`` unset or 1 nothing happens (one process). Otherwise the default
    process group is started (unless it already is) with the ``nccl`` backend for CUDA
    devices, each rank using ``cuda:LOCAL_RANK``, and ``gloo`` otherwise. Raises
    :class:`fastngd.errors.UsageError` when torch has no ``torch.distributed`` or the
    group's size differs from ``WORLD_SIZE``.
    """
    from fastngd.errors import UsageError

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedRun(1, 0, device, False)
    if not dist.is_available():
        raise UsageError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    cuda = str(device).startswith("cuda")
    if cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if cuda else "gloo")
    if dist.get_world_size() != world:
        raise UsageError(
            f"WORLD_SIZE={world} but the process group has {dist.get_world_size()} ranks"
        )
    return DistributedRun(world, dist.get_rank(), device, created)


def shutdown(run: DistributedRun) -> None:
    """End a run of :func:`init_from_env`: wait for every rank, then destroy the process
    group if that call created it."""
    if run.world > 1 and dist.is_initialized():
        dist.barrier()
        if run.created:
            dist.destroy_process_group()


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

"""The state of a run that a checkpoint holds: the whole model, the optimizer, the RNGs.

Under ``torchrun`` every function here is a collective (every rank calls it): the model
state is gathered from DDP replicas or FSDP2 shards into one plain ``state_dict`` on rank 0
(keys of the unwrapped module), and every rank's RNG states are gathered on rank 0.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from fastngd import distributed as fdist
from fastngd.errors import InputError

__all__ = [
    "all_rng_states", "full_model_state", "load_full_model_state", "load_optimizer_state",
    "optimizer_state", "params_finite", "rng_state", "set_rng_state",
]


def full_model_state(model: nn.Module) -> dict[str, Any]:
    """The whole model state on CPU: a copy of ``state_dict()`` in one process; under
    ``torchrun`` gathered with ``get_model_state_dict(full_state_dict=True)`` (only rank 0
    receives the tensors, the others get ``{}``). DDP's ``module.`` prefix and FSDP2's
    DTensor shards disappear: keys are the plain module's."""
    if fdist.world_size() == 1:
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def load_full_model_state(model: nn.Module, state: dict[str, Any]) -> None:
    """Inverse of :func:`full_model_state`; under ``torchrun`` every rank passes the full
    state it read and keeps its own shard (FSDP2) or replica (DDP)."""
    if fdist.world_size() == 1:
        model.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def _sharded_params(optimizer: torch.optim.Optimizer) -> dict[int, Tensor]:
    """``{state_dict id: parameter}`` of the optimizer's sharded (FSDP2 DTensor) parameters,
    with the ids ``Optimizer.state_dict`` gives them (their order in the groups)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return {i: p for i, p in enumerate(params) if fdist.is_sharded(p)}


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's ``state_dict`` with every tensor whole, on the CPU.

    Per-parameter state (a base optimizer's momentum buffers and Adam moments) is kept as
    is in one process and with replicated (DDP) parameters, where rank 0's copy is
    everyone's. For sharded (FSDP2) parameters the state is a DTensor of the parameter's
    layout: each such buffer is gathered whole (``full_tensor``, a collective every rank
    takes part in, in the same order), so the checkpoint holds the full state like the
    full model state of :func:`full_model_state`, and :func:`load_optimizer_state` shards it
    again."""
    state = optimizer.state_dict()
    sharded = _sharded_params(optimizer)
    if not sharded:
        return state
    per_param = dict(state["state"])
    for pid in sorted(sharded):
        entries = dict(per_param.get(pid, {}))
        for name in sorted(entries):
            value = entries[name]
            if fdist.is_sharded(value):
                entries[name] = value.full_tensor().detach().to("cpu")
        per_param[pid] = entries
    return {**state, "state": per_param}


def _shard_like(full: Tensor, param: Tensor) -> Tensor:
    """``full`` (a whole tensor) laid out like the DTensor ``param``: this rank keeps its
    shard. Every rank holds ``full`` (read from the checkpoint), so no data is sent."""
    from torch.distributed.tensor import distribute_tensor

    local = fdist.local_view(param.detach())
    value = full.to(local.device)
    try:
        return distribute_tensor(value, param.device_mesh, param.placements,  # type: ignore[attr-defined]
                                 src_data_rank=None)
    except TypeError:  # pragma: no cover - torch without src_data_rank (older than 2.6)
        return distribute_tensor(value, param.device_mesh, param.placements)  # type: ignore[attr-defined]


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_state`: whole buffers of sharded (FSDP2) parameters are
    cut to this rank's shard (as DTensors of the parameter's layout), then the optimizer
    loads the state. Raises :class:`fastngd.errors.InputError` when a saved buffer does not
    have its parameter's shape."""
    sharded = _sharded_params(optimizer)
    if sharded:
        per_param = dict(state.get("state", {}))
        for pid, param in sharded.items():
            entries = dict(per_param.get(pid, {}))
            for name, value in entries.items():
                if not isinstance(value, Tensor) or value.dim() == 0:
                    continue  # a step count
                if tuple(value.shape) != tuple(param.shape):
                    raise InputError(
                        f"the checkpoint's optimizer state {name!r} of parameter {pid} has "
                        f"shape {tuple(value.shape)}, the parameter {tuple(param.shape)}"
                    )
                entries[name] = _shard_like(value, param)
            per_param[pid] = entries
        state = {**state, "state": per_param}
    optimizer.load_state_dict(state)


def rng_state() -> dict[str, Any]:
    """This process's torch RNG states (CPU, and every CUDA device when available)."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def all_rng_states() -> list[dict[str, Any]] | None:
    """Every rank's :func:`rng_state` on rank 0 (``None`` on the other ranks)."""
    return fdist.gather_on_rank0(rng_state())


def params_finite(model: nn.Module) -> bool:
    """All parameters are finite; under ``torchrun`` on every rank (each checks its local
    shard or replica), so all ranks get the same answer."""
    params = [fdist.local_view(p) for p in model.parameters()]
    finite = all(bool(torch.isfinite(p).all()) for p in params)
    device = params[0].device if params else torch.device("cpu")
    return fdist.all_ranks_agree(finite, device)

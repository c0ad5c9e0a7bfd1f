"""The state of a run that a checkpoint holds: the whole model, the optimizer, the RNGs.

Under ``torchrun`` every function here is a collective (every rank calls it): the model
state is gathered from DDP replicas or FSDP2 shards into one plain ``state_dict`` on rank 0
(keys of the unwrapped module), and every rank's RNG states are gathered on rank 0.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fastngd import distributed as fdist

__all__ = [
    "all_rng_states", "full_model_state", "load_full_model_state", "optimizer_state",
    "params_finite", "rng_state", "set_rng_state",
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


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's ``state_dict``. Per-parameter state (a base optimizer's moments) is
    kept as is in one process or with replicated (DDP) parameters, where rank 0's copy is
    everyone's; with sharded (FSDP2) parameters it would be rank 0's shard only, so it is
    refused."""
    state = optimizer.state_dict()
    leftover = [k for k, v in state["state"].items() if v]
    sharded = any(fdist.is_sharded(p) for g in optimizer.param_groups for p in g["params"])
    if leftover and sharded:
        raise RuntimeError(
            f"the optimizer holds per-parameter state of sharded parameters ({len(leftover)} "
            "parameters): it cannot be checkpointed as a whole-run state"
        )
    return state


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

"""What every base update provides: its per-group hyper-parameters, their validation, its
per-tensor state and the row of the backend's ``hyper`` table.

A base update turns the combined direction ``d`` into the update ``u`` of the step
``θ ← θ − η·u``, with torch's semantics for the same optimizer fed ``d`` as its gradient.
The arithmetic itself runs in the backends (:meth:`fastngd.backends.Backend.step`, one fused
pass); a base here owns the bookkeeping around it.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from fastngd.backends.base import accumulation_dtype, state_names

__all__ = ["GROUP_KEYS", "BaseUpdate", "check_fraction", "check_non_negative"]

#: every per-group hyper-parameter a base may use (other keys of a group are left alone).
GROUP_KEYS = ("momentum", "betas", "eps", "weight_decay")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # ValueError for every bad hyper-parameter, its type included, as torch.optim does
        raise ValueError(f"{name} must be a number, got {value!r}")  # noqa: TRY004
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def check_non_negative(name: str, value: Any) -> float:
    """``value`` as a float; ``ValueError`` unless it is a finite number ``>= 0``."""
    v = _number(name, value)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def check_fraction(name: str, value: Any) -> float:
    """``value`` as a float; ``ValueError`` unless ``0 <= value < 1``."""
    v = _number(name, value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return v


class BaseUpdate:
    """A base update (one subclass per base, one module each).

    Class attributes: ``name`` (the backend ``kind``), ``defaults`` (its per-group
    hyper-parameters and their default values, torch's), ``counts_steps`` (keeps a
    per-tensor step count ``"step"``, as torch's Adam does, for the bias corrections),
    ``momentum_names`` (the state buffers that carry a running average of past directions,
    which :meth:`fastngd.NGDiffOptimizer.reset_momentum` clears).
    """

    name: ClassVar[str] = "abstract"
    defaults: ClassVar[dict[str, Any]] = {}
    counts_steps: ClassVar[bool] = False
    momentum_names: ClassVar[tuple[str, ...]] = ()

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the per-tensor state buffers (torch's names for the same buffers)."""
        return state_names(self.name)

    def validate(self, group: dict[str, Any]) -> None:
        """Raise ``ValueError`` for a bad or inapplicable hyper-parameter of ``group``."""
        for key in GROUP_KEYS:
            if key in group and key not in self.defaults:
                users = ", ".join(repr(b) for b in _bases_using(key))
                raise ValueError(
                    f"{key}= applies to base {users}, not to base {self.name!r}"
                )
        check_non_negative("weight_decay", group.get("weight_decay", 0.0))

    def hyper(self, group: dict[str, Any]) -> tuple[float, float, float, float]:
        """``(weight_decay, beta1, beta2, eps)`` of ``group`` for the backend's ``hyper``
        table (columns a base does not use are 0)."""
        return (float(group.get("weight_decay", 0.0)), 0.0, 0.0, 0.0)

    def bias_corrections(self, beta1: Tensor, beta2: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(bc₁, bc₂)`` per tensor, for its ``β₁``, ``β₂`` and step number ``t`` (this step
        included): 1 unless the base corrects for its zero-initialised moments."""
        one = torch.ones_like(t)
        return one, one

    def init_state(self, param: Tensor) -> dict[str, Tensor]:
        """Fresh state of one parameter: zero buffers of its shape in the accumulation dtype
        (float32 for bf16/fp16 parameters), contiguous, plus ``step`` when
        ``counts_steps``. For a DTensor parameter the buffers are DTensors of the same
        layout."""
        acc = accumulation_dtype(param.dtype)
        state: dict[str, Tensor] = {
            name: torch.zeros_like(param.detach(), dtype=acc, memory_format=torch.contiguous_format)
            for name in self.state_names
        }
        if self.counts_steps:
            state["step"] = torch.zeros((), dtype=torch.float32, device=_local_device(param))
        return state


def _local_device(param: Tensor) -> torch.device:
    from fastngd.distributed import local_view

    return local_view(param.detach()).device


def _bases_using(key: str) -> list[str]:
    from . import BASES, get_base

    return [b for b in BASES if key in get_base(b).defaults]

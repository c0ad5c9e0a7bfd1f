"""The step-size interface: how far the optimizer moves along the base's update ``u``.

A step size receives the step's :class:`UpdateRun` (the base update over every bucket,
:class:`fastngd.update.UpdatePass`) and a :class:`StepContext`, and either applies the
update with some learning-rate multiplier (:meth:`UpdateRun.step`), or advances the base once
and places θ itself (:meth:`UpdateRun.advance`, then :meth:`UpdateRun.move`: θ =
backup + c·ξ·u with ξ the per-tensor learning rate). It owns its own state
(:meth:`StepSize.state_dict`), carried in the optimizer's ``state_dict``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional, Protocol

from torch import Tensor

__all__ = ["StepContext", "StepSize", "StepSizeResult", "UpdateRun"]


class UpdateRun(Protocol):
    """What a step size may do with the base update of one step (see
    :class:`fastngd.update.UpdatePass`). Factors are 0-d device tensors multiplying every
    group's ``lr``; nothing happens on a skipped step whatever the factor."""

    def step(self, factor: Tensor) -> None:
        """The fused update ``θ ← θ − factor·lr·u`` (the base's state advances once)."""

    def advance(self, factor: Tensor) -> None:
        """Advance the base's state once, keep ``u`` and a backup of θ, leave θ unchanged;
        ``ξ = factor·lr`` becomes the probe unit of :meth:`move`."""

    def move(self, c: Tensor) -> None:
        """After :meth:`advance`: ``θ ← backup + c·ξ·u`` (``c = 0`` restores θ bit-exactly)."""


@dataclass
class StepContext:
    """What a step size knows about the step.

    Attributes:
        closure_retain: the retain closure (for probes), or None.
        loss_retain: ``L₀`` at θ (averaged over ranks), 0-d.
        lr_scale: the current multiplier of every group's ``lr``, 0-d.
        ok: the step is not skipped, 0-d boolean.
        calls: number of earlier calls of ``step``.
        reduce_probes: averages probe losses over ranks (identity on one process).
    """

    closure_retain: Optional[Callable[[], Tensor]]
    loss_retain: Optional[Tensor]
    lr_scale: Tensor
    ok: Tensor
    calls: int
    reduce_probes: Callable[[Tensor], Tensor]


@dataclass
class StepSizeResult:
    """What a step size did.

    Attributes:
        lr_scale: the new multiplier of every group's ``lr``.
        applied: the multiplier actually applied to this step's update (0 when the step
            was not taken or skipped).
        lr_updated: the multiplier changed by a fit (0-d boolean).
        outcome: a code of :data:`fastngd.stats.GEN_OUTCOMES` (0-d int64).
        probe_losses: ``[L₊, L₋]`` when probes ran.
    """

    lr_scale: Tensor
    applied: Tensor
    lr_updated: Tensor
    outcome: Tensor
    probe_losses: Optional[Tensor] = None


class StepSize(ABC):
    """A step-size rule, registered by :attr:`name` in :data:`fastngd.step_sizes.STEP_SIZES`."""

    name: ClassVar[str] = "abstract"

    def probes(self, calls: int) -> bool:
        """Whether the call after ``calls`` earlier ones evaluates the retain closure (and
        so needs it and ``L₀``)."""
        return False

    @abstractmethod
    def apply(self, run: UpdateRun, ctx: StepContext) -> StepSizeResult:
        """Apply this step's update through ``run``; see the module docstring."""

    def state_dict(self) -> dict[str, Any]:
        """State to carry across checkpoints (none by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""

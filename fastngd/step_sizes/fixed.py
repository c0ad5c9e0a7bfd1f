"""A fixed learning rate: ``θ ← θ − η·u`` with ``η = lr × lr_scale`` (``lr_scale`` stays as
it is, 1 unless an earlier GeN run or a checkpoint set it)."""
from __future__ import annotations

from typing import ClassVar

import torch

from ._base import StepContext, StepSize, StepSizeResult, UpdateRun

__all__ = ["FixedStep"]


class FixedStep(StepSize):
    """The group learning rates as they are (times the current ``lr_scale``)."""

    name: ClassVar[str] = "fixed"

    def apply(self, run: UpdateRun, ctx: StepContext) -> StepSizeResult:
        run.step(ctx.lr_scale)
        false = torch.zeros((), dtype=torch.bool, device=ctx.lr_scale.device)
        return StepSizeResult(
            lr_scale=ctx.lr_scale,
            applied=torch.where(ctx.ok, ctx.lr_scale, torch.zeros_like(ctx.lr_scale)),
            lr_updated=false,
            outcome=torch.zeros((), dtype=torch.int64, device=ctx.lr_scale.device),
        )

"""GeN along the real update: probe the retain loss at ``θ ∓ ξu``, refit the rate, step.

Every ``every`` calls (the first included), with ``ξ_i = lr_i × lr_scale`` per tensor:

1. ``run.advance``: the base's state advances once with this step's direction and the update
   ``u`` it implies is kept, together with a bit-exact backup of θ, in the two
   gradient-sized buffers the step already holds (exact storage: ``g_R``'s buffer gets ``u``
   and ``g_F``'s gets θ, so no memory is added);
2. two forwards of the retain closure under ``no_grad``: ``L₊ = L_R(θ − ξu)`` and
   ``L₋ = L_R(θ + ξu)`` (θ written from the backup each time, never by adding and
   subtracting);
3. the fit of :func:`fastngd.autolr.gen_rescale` with ``L₀`` = the step's retain loss;
   ``lr_scale ← lr_scale × factor`` when accepted;
4. ``θ ← backup − (lr_scale_new/lr_scale)·ξ·u``.

A probe loss that is not finite (an overflow along ``u``) means the step must not be taken:
θ is restored from the backup bit-exactly (the step is taken with step size 0: the base's
state has advanced once, as torch's would with ``lr = 0``), ``lr_scale`` is multiplied by
``shrink`` (1/2), and the step statistics say so (``gen_outcome = 3``). On a skipped step
nothing changes. If the closure raises during a probe, θ is restored before the error
propagates.

Lemma 4 makes ``G ≥ 0`` hold by construction for the rules that guarantee its retain side
with ``base="sgd"`` (``u = d``); under a preconditioner ``G`` can be negative, and the fit is
then rejected (the rate is kept).
"""
from __future__ import annotations

from typing import ClassVar

import torch

from fastngd.autolr import GeNConfig, gen_rescale
from fastngd.closures import check_loss

from ._base import StepContext, StepSize, StepSizeResult, UpdateRun
from .fixed import FixedStep

__all__ = ["GeNStep"]


class GeNStep(StepSize):
    """The paper's GeN (every ``config.every`` calls; a fixed step in between)."""

    name: ClassVar[str] = "gen"

    def __init__(self, config: GeNConfig | None = None) -> None:
        self.config = config or GeNConfig()

    def probes(self, calls: int) -> bool:
        return calls % self.config.every == 0

    def apply(self, run: UpdateRun, ctx: StepContext) -> StepSizeResult:
        if not self.probes(ctx.calls):
            return FixedStep().apply(run, ctx)
        if ctx.closure_retain is None or ctx.loss_retain is None:
            raise ValueError("GeN needs closure_retain and the retain loss")
        scale, ok = ctx.lr_scale, ctx.ok
        run.advance(scale)
        probes = self._probe(run, ctx)
        factor, accepted = self.rescale(ctx.loss_retain.to(probes.dtype), probes, ctx)
        accepted = accepted & ok
        blocked = ok & ~torch.isfinite(probes).all()
        one = torch.ones_like(scale)
        change = torch.where(accepted, factor.to(scale.dtype),
                             torch.where(blocked, one * self.config.shrink, one))
        new_scale = (scale * change).to(scale.dtype)
        taken = torch.where(blocked, torch.zeros_like(change), change)  # of ξ
        run.move(-taken)
        outcome = torch.where(
            ~ok, 4, torch.where(blocked, 3, torch.where(accepted, 1, 2))
        ).to(torch.int64)
        return StepSizeResult(
            lr_scale=new_scale,
            applied=torch.where(ok & ~blocked, new_scale, torch.zeros_like(new_scale)),
            lr_updated=accepted,
            outcome=outcome,
            probe_losses=probes,
        )

    def rescale(self, l0: torch.Tensor, probes: torch.Tensor,
                ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        """``(factor, accepted)``: the paper's fit (:func:`fastngd.autolr.gen_rescale`) from
        ``L₀`` and the probes ``[L₊, L₋]``; subclasses may change the factor."""
        factor, accepted, _ = gen_rescale(l0, probes[0], probes[1], self.config)
        return factor, accepted

    @staticmethod
    def _probe(run: UpdateRun, ctx: StepContext) -> torch.Tensor:
        """``[L₊, L₋]`` averaged over ranks; θ restored if the closure raises."""
        assert ctx.closure_retain is not None
        dtype, device = ctx.lr_scale.dtype, ctx.lr_scale.device
        one = torch.ones((), dtype=dtype, device=device)
        try:
            with torch.no_grad():
                run.move(-one)
                l_plus = check_loss(ctx.closure_retain(), "closure_retain").detach()
                run.move(one)
                l_minus = check_loss(ctx.closure_retain(), "closure_retain").detach()
        except BaseException:
            run.move(torch.zeros_like(one))
            raise
        return ctx.reduce_probes(torch.stack([l_plus.to(device, dtype), l_minus.to(device, dtype)]))

"""GeN with a safeguard on the retain-loss trend (``"gen-guard"``): the paper's fit, but the
rate never rises while the retain loss climbs, backs off once it has risen, and stays inside
a trust region around the initial rate.

GeN's fit (:mod:`fastngd.autolr`) is local: it sees the retain loss along this step's update
on this step's batch, and nothing of where the run is going. On data it was not tuned on it
can keep raising the rate while the retain loss climbs from step to step (each local fit
still finds ``G > 0, C > 0`` and a large ``η*``). The guard watches the trend. With ``L₀``
the retain loss of each step (at θ, before the step) it keeps

    T_k = β·T_{k−1} + (1 − β)·L₀,k      (T_1 = L₀,1; β = ``trend_ema``)
    F_k = min_{j ≤ k} T_j               (the best level so far)

updated on every step that is not skipped, probe or not. At a GeN refit (every ``every``
calls) with the paper's factor ``f`` (``η ← f·η``, :func:`fastngd.autolr.gen_rescale`) and
``T_fit`` the trend at the previous refit:

* **climbing**: ``T_k > T_fit`` → ``f ← min(f, 1)`` (the rate may fall, never rise);
* **risen**: ``T_k > (1 + tol)·F_k + tol_abs`` → ``f ← min(f, backoff)`` (the rate falls
  even when the fit is rejected);
* **trust region**: ``f ← min(f, max_scale/s)`` and ``f ← max(f, min(1, min_scale/s))`` with
  ``s`` the current multiplier of the initial rate, so refits keep the rate within
  ``[min_scale, max_scale]`` times the initial one (the floor never raises the rate: a rate
  already below it, after a non-finite probe, is kept).

So on any sequence of retain losses, at a refit where the trend has climbed since the
previous refit the rate does not increase, whatever the probes say; and every change of the
rate is a factor in ``[min(backoff, ema + (1 − ema)·lo, min_scale/s), ema + (1 − ema)·hi]``
(GeN's EMA and clip, ``[lo, hi]`` = ``clip``), with the rate within the trust region
(both hypothesis-tested). The probes, the bit-exact restore of
θ and the single advance of the base's state per step are those of :class:`GeNStep`; a
non-finite probe still halves the rate and blocks the step. No host synchronisation: the
trend lives in 0-d device tensors, carried in ``state_dict``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from fastngd.autolr import GeNConfig

from ._base import StepContext, StepSizeResult, UpdateRun
from .gen import GeNStep

__all__ = ["GuardConfig", "GuardedGeNStep", "guard_factor"]


@dataclass(frozen=True)
class GuardConfig:
    """Settings of the retain-loss safeguard (see the module docstring). The defaults were
    chosen on ``tofu-synthetic`` (see :mod:`fastngd.unlearn.config`): a memorised target's
    retain loss is ~0.005 nats, so a purely relative tolerance would back off on noise.

    Attributes:
        trend_ema: β of the retain-loss trend ``T``, in [0, 1).
        tol: relative rise of ``T`` over its best level that triggers the back-off (≥ 0).
        tol_abs: absolute rise (in loss units, nats) added to ``tol``'s (≥ 0).
        backoff: the largest factor applied to the rate at a refit while risen, in (0, 1].
        max_scale: the rate never exceeds ``max_scale`` × the initial rate (≥ 1; ``inf``:
            no cap).
        min_scale: refits never take the rate below ``min_scale`` × the initial rate, in
            [0, 1] (0: no floor).
    """

    trend_ema: float = 0.9
    tol: float = 0.5
    tol_abs: float = 0.1
    backoff: float = 0.7
    max_scale: float = 4.0
    min_scale: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.trend_ema < 1.0:
            raise ValueError(f"trend_ema must be in [0, 1), got {self.trend_ema}")
        if not (self.tol >= 0.0 and self.tol_abs >= 0.0):
            raise ValueError(f"tol and tol_abs must be >= 0, got {self.tol}, {self.tol_abs}")
        if not 0.0 < self.backoff <= 1.0:
            raise ValueError(f"backoff must be in (0, 1], got {self.backoff}")
        if not self.max_scale >= 1.0:
            raise ValueError(f"max_scale must be >= 1, got {self.max_scale}")
        if not 0.0 <= self.min_scale <= 1.0:
            raise ValueError(f"min_scale must be in [0, 1], got {self.min_scale}")


def guard_factor(factor: Tensor, scale: Tensor, trend: Tensor, trend_fit: Tensor,
                 floor: Tensor, config: GuardConfig) -> tuple[Tensor, Tensor]:
    """``(factor, risen)``: GeN's ``factor`` after the safeguard.

    ``scale`` is the current multiplier of the initial rate, ``trend`` the retain-loss trend
    ``T_k`` now, ``trend_fit`` its value at the previous refit, ``floor`` its best level
    ``F_k``; all 0-d tensors of one dtype. Returns the guarded factor
    ``max(min(f, 1 if T_k > T_fit, backoff if risen, max_scale/scale),
    min(1, min_scale/scale))`` and whether the trend has risen
    (``T_k > (1 + tol)·F_k + tol_abs``).
    """
    one = torch.ones_like(factor)
    out = torch.where(trend > trend_fit, torch.minimum(factor, one), factor)
    risen = trend > (1.0 + config.tol) * floor + config.tol_abs
    out = torch.where(risen, torch.minimum(out, one * config.backoff), out)
    if math.isfinite(config.max_scale):
        out = torch.minimum(out, config.max_scale / scale)
    if config.min_scale > 0.0:
        out = torch.maximum(out, torch.clamp(config.min_scale / scale, max=1.0))
    return out, risen


class GuardedGeNStep(GeNStep):
    """GeN (every ``config.every`` calls) with the retain-loss safeguard of
    :class:`GuardConfig`; ``guard`` options may also be given as keywords
    (``GuardedGeNStep(max_scale=10)``)."""

    name: ClassVar[str] = "gen-guard"

    def __init__(self, config: GeNConfig | None = None, guard: GuardConfig | None = None,
                 **options: Any) -> None:
        super().__init__(config)
        if guard is not None and options:
            raise TypeError("pass either guard= or its options as keywords, not both")
        self.guard = guard or GuardConfig(**options)
        self._state: dict[str, Tensor] = {}

    def apply(self, run: UpdateRun, ctx: StepContext) -> StepSizeResult:
        self._observe(ctx)
        return super().apply(run, ctx)

    def _observe(self, ctx: StepContext) -> None:
        """Fold this step's ``L₀`` into the trend and its best level (not on a skipped step
        or a non-finite loss)."""
        if ctx.loss_retain is None:
            return
        l0 = ctx.loss_retain.detach().to(ctx.lr_scale.device, ctx.lr_scale.dtype).reshape(())
        use = ctx.ok & torch.isfinite(l0)
        if not self._state:
            nan = torch.full_like(l0, math.nan)
            self._state = {"trend": nan, "trend_fit": nan.clone(), "floor": nan.clone()}
        st = self._state
        fresh = torch.isnan(st["trend"])
        beta = self.guard.trend_ema
        trend = torch.where(fresh, l0, beta * st["trend"] + (1.0 - beta) * l0)
        trend = torch.where(use, trend, st["trend"])
        st["trend"] = trend
        st["floor"] = torch.where(torch.isnan(st["floor"]), trend, torch.fmin(st["floor"], trend))
        st["trend_fit"] = torch.where(torch.isnan(st["trend_fit"]), trend, st["trend_fit"])

    def rescale(self, l0: Tensor, probes: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        factor, accepted = super().rescale(l0, probes, ctx)
        st = self._state
        if not st:  # no retain loss seen: nothing to guard with
            return factor, accepted
        dtype = factor.dtype
        guarded, risen = guard_factor(factor, ctx.lr_scale.to(dtype), st["trend"].to(dtype),
                                      st["trend_fit"].to(dtype), st["floor"].to(dtype),
                                      self.guard)
        known = ~torch.isnan(st["trend"])
        st["trend_fit"] = torch.where(ctx.ok & known, st["trend"], st["trend_fit"])
        changed = known & (accepted | risen | (guarded < factor))
        return torch.where(known, guarded, factor), accepted | changed

    def state_dict(self) -> dict[str, Any]:
        return {"guard": asdict(self.guard),
                **{k: v.clone() for k, v in self._state.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._state = {k: state[k].clone() for k in ("trend", "trend_fit", "floor")
                       if k in state}

"""Step sizes: how far the optimizer moves along the base's update (one module each).

The optimizer's third layer, after the direction (:mod:`fastngd.rules`) and the base update
(:mod:`fastngd.bases`): :class:`FixedStep` (``"fixed"``) keeps the group learning rates;
:class:`GeNStep` (``"gen"``, the paper's GeN) refits them every few steps from two probes of
the retain loss along the update; :class:`GuardedGeNStep` (``"gen-guard"``) is GeN with a
safeguard on the retain-loss trend (never raises the rate while the retain loss climbs) and a
trust region around the initial rate. New rules subclass :class:`StepSize` and register a name
in :data:`STEP_SIZES`.
"""
from __future__ import annotations

from typing import Any

from fastngd.autolr import GeNConfig

from ._base import StepContext, StepSize, StepSizeResult, UpdateRun
from .fixed import FixedStep
from .gen import GeNStep
from .guarded import GuardConfig, GuardedGeNStep, guard_factor

__all__ = [
    "STEP_SIZES",
    "FixedStep",
    "GeNStep",
    "GuardConfig",
    "GuardedGeNStep",
    "StepContext",
    "StepSize",
    "StepSizeResult",
    "UpdateRun",
    "get_step_size",
    "guard_factor",
]

#: step-size rules by name.
STEP_SIZES: dict[str, type[StepSize]] = {
    "fixed": FixedStep, "gen": GeNStep, "gen-guard": GuardedGeNStep,
}


def get_step_size(name: str, gen_config: GeNConfig | None = None, **options: Any) -> StepSize:
    """The step-size rule called ``name`` (one of :data:`STEP_SIZES`); rules of the GeN family
    take ``gen_config``. ``ValueError`` for an unknown name."""
    if name not in STEP_SIZES:
        raise ValueError(f"unknown step size {name!r}; valid: {', '.join(STEP_SIZES)}")
    cls = STEP_SIZES[name]
    if issubclass(cls, GeNStep):
        return cls(gen_config, **options)
    if options:
        raise TypeError(f"step size {name!r} takes no options, got {sorted(options)}")
    return cls()

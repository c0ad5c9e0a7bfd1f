"""Stopping rules for :func:`fastngd.unlearn.unlearn`: callbacks that end a run once the
forget set is unlearned, instead of always running every epoch.

:class:`ForgetLossStop` watches the forget objective of each step record (``loss_forget``:
the forget closure's value, the cross-entropy of the forget batch for the CE methods):

    S_k = β·S_{k−1} + (1 − β)·L_F,k      (S_1 = L_F,1; β = ``ema``)

and stops after the first step ``k ≥ min_steps`` with ``S_k ≥ L_F,1 + rise``: the smoothed
forget loss has risen by ``rise`` nats above its value at the start. ``max_steps`` ends the
run in any case (the loop's ``epochs`` is the other bound).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["ForgetLossStop"]


@dataclass
class ForgetLossStop:
    """Stop once the smoothed forget loss has risen by ``rise`` (a step callback: returns
    True to stop; see the module docstring).

    Attributes:
        rise: the rise of the smoothed forget loss over its first value, in nats (> 0).
        ema: β of the smoothing, in [0, 1).
        min_steps: never stop before this many steps.
        max_steps: stop after this many steps (None: no bound here).
    """

    rise: float
    ema: float = 0.9
    min_steps: int = 0
    max_steps: Optional[int] = None
    start: Optional[float] = field(default=None, init=False)
    smoothed: Optional[float] = field(default=None, init=False)
    stopped_at: Optional[int] = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.rise, (int, float)) and math.isfinite(self.rise)
                and self.rise > 0):
            raise ValueError(f"rise must be a finite number > 0, got {self.rise!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")

    def __call__(self, record: Mapping[str, Any]) -> bool:
        loss = float(record["loss_forget"])
        step = int(record["step"])
        if self.start is None or self.smoothed is None:
            self.start = self.smoothed = loss
        else:
            self.smoothed = self.ema * self.smoothed + (1.0 - self.ema) * loss
        done = step >= self.min_steps and self.smoothed >= self.start + self.rise
        if self.max_steps is not None and step >= self.max_steps:
            done = True
        if done and self.stopped_at is None:
            self.stopped_at = step
        return done

"""Dynamic loss scaling for fp16 (as ``torch.amp.GradScaler`` does), for two-task steps.

fp16 gradients underflow when they are small, so the loss is multiplied by a scale ``S``
before each backward pass and the gradients are divided by ``S`` afterwards (exact for a
power-of-two ``S`` unless a value overflows). The two tasks of an NGDiff step are scaled
with the same ``S`` and unscaled before the combine rule sees them, so every rule (not only
the scale-invariant ones) gets the true gradients.

Dynamic schedule, per optimizer step: when a gradient of either task is not finite the step
is skipped (the optimizer's own rule) and ``S ← S·backoff`` with the streak reset to 0;
otherwise the streak grows by one and when it reaches ``growth_interval``,
``S ← S·growth`` and the streak restarts. Everything stays on the device (no host sync).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["DynamicLossScaler"]


class DynamicLossScaler:
    """The loss scale ``S`` and its dynamic schedule (see the module docstring).

    Args:
        init_scale: ``S`` at the start (2**16, as GradScaler).
        growth_factor, backoff_factor: multipliers of ``S`` after ``growth_interval``
            finite steps in a row, and after a step with a non-finite gradient.
        growth_interval: finite steps in a row before ``S`` grows.
        device: where ``S`` and the streak live.
    """

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000,
                 device: torch.device | str = "cpu") -> None:
        if not (init_scale > 0 and growth_factor > 1 and 0 < backoff_factor < 1
                and growth_interval >= 1):
            raise ValueError(
                "need init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 and "
                f"growth_interval >= 1; got {init_scale}, {growth_factor}, {backoff_factor}, "
                f"{growth_interval}"
            )
        self.growth_factor = float(growth_factor)
        self.backoff_factor = float(backoff_factor)
        self.growth_interval = int(growth_interval)
        self.scale = torch.full((), float(init_scale), dtype=torch.float32, device=device)
        self.streak = torch.zeros((), dtype=torch.int64, device=device)

    def scale_loss(self, loss: Tensor) -> Tensor:
        """``loss · S`` (in float32 at least, so the product does not overflow fp16)."""
        value = loss.float() if loss.dtype in (torch.float16, torch.bfloat16) else loss
        return value * self.scale.to(value.device, value.dtype)

    @torch.no_grad()
    def unscale_(self, grads: Sequence[Tensor]) -> Tensor:
        """Divide ``grads`` by ``S`` in place; returns a 0-d bool tensor: whether any of them
        holds a non-finite value (checked before dividing)."""
        if not grads:
            return torch.zeros((), dtype=torch.bool, device=self.scale.device)
        bad = torch.stack([(~torch.isfinite(g)).any() for g in grads]).any()
        inv = 1.0 / self.scale
        by_device: dict[torch.device, list[Tensor]] = {}
        for g in grads:
            by_device.setdefault(g.device, []).append(g)
        for device, group in by_device.items():
            torch._foreach_mul_(group, inv.to(device))
        return bad.to(self.scale.device)

    @torch.no_grad()
    def update(self, found_inf: Tensor) -> None:
        """Advance the schedule after a step (``found_inf``: a gradient was not finite)."""
        found = found_inf.to(self.scale.device).bool()
        grown = self.streak + 1
        grow = ~found & (grown >= self.growth_interval)
        self.scale = torch.where(found, self.scale * self.backoff_factor,
                                 torch.where(grow, self.scale * self.growth_factor, self.scale))
        self.streak = torch.where(found | grow, torch.zeros_like(grown), grown)

    def state_dict(self) -> dict[str, Any]:
        """``S``, the streak and the schedule's settings."""
        return {"scale": self.scale.clone(), "streak": self.streak.clone(),
                "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        device = self.scale.device
        self.scale = state["scale"].to(device).clone()
        self.streak = state["streak"].to(device).clone()
        self.growth_factor = float(state["growth_factor"])
        self.backoff_factor = float(state["backoff_factor"])
        self.growth_interval = int(state["growth_interval"])

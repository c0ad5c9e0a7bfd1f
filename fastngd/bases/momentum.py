"""Heavy-ball momentum under the direction (``torch.optim.SGD(momentum=μ, dampening=0,
nesterov=False)`` fed ``d``).

State: the buffer ``b`` (``"momentum_buffer"``), zero before the first step. Per step:
``g = d + wd·θ``, ``b ← μ·b + g``, ``u = b``, ``θ ← θ − η·u``; the first step gives ``b = g``
as torch's does. Per-group ``momentum`` (μ in [0, 1), default 0.9) and ``weight_decay``
(L2, default 0).
"""
from __future__ import annotations

from typing import Any, ClassVar

from ._base import BaseUpdate, check_fraction

__all__ = ["Momentum"]


class Momentum(BaseUpdate):
    """``b ← μ·b + (d + wd·θ)``, ``u = b``."""

    name: ClassVar[str] = "momentum"
    defaults: ClassVar[dict[str, Any]] = {"momentum": 0.9, "weight_decay": 0.0}
    momentum_names: ClassVar[tuple[str, ...]] = ("momentum_buffer",)

    def validate(self, group: dict[str, Any]) -> None:
        super().validate(group)
        check_fraction("momentum", group.get("momentum", self.defaults["momentum"]))

    def hyper(self, group: dict[str, Any]) -> tuple[float, float, float, float]:
        return (float(group.get("weight_decay", 0.0)), float(group["momentum"]), 0.0, 0.0)

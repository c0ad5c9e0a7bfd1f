"""Adam under the direction (``torch.optim.Adam`` fed ``d``; L2 weight decay added to ``d``).

State: ``m`` (``"exp_avg"``), ``v`` (``"exp_avg_sq"``), both zero before the first step and
float32 for bf16/fp16 parameters, and the step count ``t`` (``"step"``). Per step, with
``g = d + wd·θ``:

    m ← β₁·m + (1 − β₁)·g,   v ← β₂·v + (1 − β₂)·g²,   t ← t + 1
    u = (m / (1 − β₁ᵗ)) / (√v / √(1 − β₂ᵗ) + ε),        θ ← θ − η·u

Per-group ``betas`` (each in [0, 1), default (0.9, 0.999)), ``eps`` (≥ 0, default 1e-8),
``weight_decay`` (≥ 0, default 0). ``amsgrad`` is not provided. Under this preconditioner
Lemma 4 holds for ``d`` but not necessarily for ``u``: the optimizer reports ``g_R·u`` and
``g_F·u`` in its step statistics.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ._base import BaseUpdate, check_fraction, check_non_negative

__all__ = ["Adam"]


class Adam(BaseUpdate):
    """Adam with L2 weight decay (see the module docstring)."""

    name: ClassVar[str] = "adam"
    defaults: ClassVar[dict[str, Any]] = {"betas": (0.9, 0.999), "eps": 1e-8,
                                          "weight_decay": 0.0}
    counts_steps: ClassVar[bool] = True
    momentum_names: ClassVar[tuple[str, ...]] = ("exp_avg",)

    def validate(self, group: dict[str, Any]) -> None:
        super().validate(group)
        betas = group.get("betas", self.defaults["betas"])
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        check_fraction("betas[0]", betas[0])
        check_fraction("betas[1]", betas[1])
        check_non_negative("eps", group.get("eps", self.defaults["eps"]))

    def hyper(self, group: dict[str, Any]) -> tuple[float, float, float, float]:
        b1, b2 = group["betas"]
        return (float(group.get("weight_decay", 0.0)), float(b1), float(b2), float(group["eps"]))

    def bias_corrections(self, beta1: Tensor, beta2: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(1 − β₁ᵗ, 1 − β₂ᵗ)``."""
        return 1 - torch.pow(beta1, t), 1 - torch.pow(beta2, t)

"""AdamW under the direction (``torch.optim.AdamW`` fed ``d``; decoupled weight decay).

Same state and moments as :mod:`fastngd.bases.adam`, with ``g = d`` (the decay does not enter
the moments) and

    u = (m / (1 − β₁ᵗ)) / (√v / √(1 − β₂ᵗ) + ε) + wd·θ,    θ ← θ − η·u
      = θ·(1 − η·wd) − η·m̂/(√v̂ + ε)

Per-group ``betas`` (default (0.9, 0.999)), ``eps`` (default 1e-8) and ``weight_decay``
(default 1e-2, torch's).
"""
from __future__ import annotations

from typing import Any, ClassVar

from .adam import Adam

__all__ = ["AdamW"]


class AdamW(Adam):
    """AdamW: Adam's moments of ``d`` with decoupled weight decay."""

    name: ClassVar[str] = "adamw"
    defaults: ClassVar[dict[str, Any]] = {"betas": (0.9, 0.999), "eps": 1e-8,
                                          "weight_decay": 1e-2}

"""Default settings of the experiments and of ``fastngd unlearn``.

They were tuned on the embedded ``tofu-synthetic`` model (forget10): NGDiff with GeN AutoLR
(κ = 1.8, refit every 2 steps) from an initial rate of 0.05, forget batches of 8 paired with
retain batches of 32, 30 epochs (150 steps). Every method starts from the same rate 0.05
(fixed without AutoLR): the update directions have very different scales (NGDiff's is a
difference of unit vectors, GDiff's scales with the raw gradient norms), which is exactly
the sensitivity AutoLR removes; ``fastngd reproduce tofu --lr`` sweeps other rates.
"""
from __future__ import annotations

from typing import Any

__all__ = ["FIXED_LR", "UNLEARN_DEFAULTS", "default_lr"]

UNLEARN_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 8,
    "retain_batch_size": 32,
    "autolr_every": 2,
    "autolr_scale": 1.8,
}
"""Keyword arguments of :func:`fastngd.unlearn.unlearn` shared by every run."""

AUTOLR_INITIAL_LR = 0.05
"""Initial learning rate of every method run with AutoLR."""

FIXED_LR: dict[str, float] = {
    "ngdiff": 0.05,
    "imtlg": 0.05,
    "mgda": 0.05,
    "pcgrad": 0.05,
    "pcgrad_retain": 0.05,
    "sago": 0.05,
    "gdiff": 0.05,
    "ga": 0.05,
    "gd": 0.05,
    "rlw": 0.05,
    "lossnorm": 0.05,
    "npo": 0.05,
    "simnpo": 0.05,
}
"""Fixed learning rates (without AutoLR) by method; ``gdiff-<c>`` uses ``gdiff``'s."""


def default_lr(method: str, autolr: bool) -> float:
    """The default (initial) learning rate of ``method`` with or without AutoLR."""
    if autolr:
        return AUTOLR_INITIAL_LR
    key = "gdiff" if method.startswith("gdiff") else method
    return FIXED_LR.get(key, 0.05)

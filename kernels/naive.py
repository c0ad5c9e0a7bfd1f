"""Float64 per-tensor reference of what each kernel computes (the test oracle).

Deliberately plain: one tensor at a time, everything promoted to float64, no fusion.
A retain entry may be a tensor or a :class:`fastngd.compact.QuantizedTensor` (its
dequantized values, formed in float32 as the kernels do, are used).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
from torch import Tensor

from fastngd.compact import QuantizedTensor

__all__ = ["dense", "direction", "gram", "perturb", "update"]

Retain = Union[Tensor, QuantizedTensor]


def dense(r: Retain) -> Tensor:
    """``r`` as a float64 tensor (dequantized in float32 first when quantized)."""
    if isinstance(r, QuantizedTensor):
        return r.dequantize(torch.float32).double()
    return r.double()


def gram(retain: Sequence[Retain], forget: Sequence[Tensor]) -> Tensor:
    """``[Σ‖r_i‖², Σ‖f_i‖², Σ r_i·f_i]`` in float64."""
    out = torch.zeros(3, dtype=torch.float64)
    for r, f in zip(retain, forget):
        rd, fd = dense(r).reshape(-1).cpu(), f.double().reshape(-1).cpu()
        out += torch.stack([rd @ rd, fd @ fd, rd @ fd])
    return out


def direction(r: Retain, f: Tensor, weights: Sequence[float], sago: bool = False) -> Tensor:
    """``w_R·r − w_F·f`` or, with ``sago``, ``w_R·r`` where ``r·f > 0`` else ``−w_F·f``."""
    rd, fd = dense(r), f.double()
    wr, wf = float(weights[0]), float(weights[1])
    if sago:
        agree = torch.sign(rd) * torch.sign(fd) > 0
        return torch.where(agree, wr * rd, -wf * fd)
    return wr * rd - wf * fd


def update(
    params: Sequence[Tensor],
    retain: Sequence[Retain],
    forget: Sequence[Tensor],
    lr: Sequence[float],
    weights: Sequence[float],
    sago: bool = False,
) -> list[Tensor]:
    """New parameters ``p_i − lr_i·d_i`` in float64 (``p_i`` unchanged where lr_i == 0)."""
    out = []
    for p, r, f, eta in zip(params, retain, forget, lr):
        if float(eta) == 0.0:
            out.append(p.double().clone())
        else:
            out.append(p.double() - float(eta) * direction(r, f, weights, sago))
    return out


def perturb(
    backup: Sequence[Tensor], direction_: Sequence[Tensor], scale: Sequence[float]
) -> list[Tensor]:
    """``backup_i + scale_i·direction_i`` in float64."""
    return [b.double() + float(s) * d.double() for b, d, s in zip(backup, direction_, scale)]

"""Float64 per-tensor reference of what each backend operation computes (the test oracle).

Deliberately plain: one tensor at a time, everything promoted to float64, no fusion, written
straight from the formulas in :mod:`fastngd.backends.base`. Nothing here writes to its
inputs: every function returns new float64 tensors. A retain entry may be a tensor or a
:class:`fastngd.compact.QuantizedTensor` (its dequantized values, formed in float32 as the
kernels do, are used).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import torch
from torch import Tensor

from fastngd.compact import QuantizedTensor
from fastngd.rules.elementwise import combine

__all__ = ["advance", "base_update", "dense", "direction", "gram", "perturb", "step"]

Retain = Union[Tensor, QuantizedTensor]
Row = Sequence[float]


def dense(r: Retain) -> Tensor:
    """``r`` as a float64 tensor (dequantized in float32 first when quantized)."""
    if isinstance(r, QuantizedTensor):
        return r.dequantize(torch.float32).double()
    return r.double()


def gram(retain: Sequence[Retain], forget: Sequence[Tensor], per_tensor: bool = False) -> Tensor:
    """``[Σ‖r_i‖², Σ‖f_i‖², Σ r_i·f_i]`` in float64, or one row per tensor (``(n, 3)``)."""
    rows = []
    for r, f in zip(retain, forget):
        rd, fd = dense(r).reshape(-1).cpu(), f.double().reshape(-1).cpu()
        rows.append(torch.stack([rd @ rd, fd @ fd, rd @ fd]))
    out = torch.stack(rows) if rows else torch.zeros(0, 3, dtype=torch.float64)
    return out if per_tensor else out.sum(0)


def direction(r: Retain, f: Tensor, weights: Row, mode: str = "linear") -> Tensor:
    """``d = combine(r, f, w_R, w_F, mode)`` in float64 (see :mod:`fastngd.rules.elementwise`)."""
    return combine(dense(r), f.double(), float(weights[0]), float(weights[1]), mode)


def base_update(
    p: Tensor, d: Tensor, state: Sequence[Tensor], hyper: Row, kind: str
) -> tuple[Tensor, list[Tensor]]:
    """The update direction ``u`` and the new state of base ``kind`` for one tensor, from
    the direction ``d``, the parameter ``p`` and the state before the step (float64).
    ``hyper`` is one row of ``HYPER_COLUMNS = (lr, weight_decay, beta1, beta2, eps, bc1,
    bc2)``; ``lr`` is not used here."""
    _, wd, b1, b2, eps, bc1, bc2 = (float(x) for x in hyper)
    p64, d64 = p.double(), d.double()
    s64 = [s.double() for s in state]
    if kind == "sgd":
        return d64 + wd * p64, []
    if kind == "momentum":
        buf = b1 * s64[0] + (d64 + wd * p64)
        return buf.clone(), [buf]
    if kind in ("adam", "adamw"):
        g = d64 + wd * p64 if kind == "adam" else d64
        m = b1 * s64[0] + (1 - b1) * g
        v = b2 * s64[1] + (1 - b2) * g * g
        u = (m / bc1) / (v.sqrt() / math.sqrt(bc2) + eps)
        if kind == "adamw":
            u = u + wd * p64
        return u, [m, v]
    raise ValueError(f"unknown base {kind!r}")


def advance(
    params: Sequence[Tensor],
    retain: Sequence[Retain],
    forget: Sequence[Tensor],
    state: Sequence[Sequence[Tensor]],
    hyper: Tensor,
    weights: Tensor,
    kind: str,
    mode: str = "linear",
) -> tuple[list[Tensor], list[list[Tensor]], Tensor]:
    """What :meth:`Backend.advance_and_backup` computes: ``(u, new state, [Σ r·u, Σ f·u])``
    in float64 (``u = 0`` and the state kept on skipped rows, those with lr 0)."""
    hyper64, w64 = hyper.double().cpu(), weights.double().cpu()
    us: list[Tensor] = []
    new_state: list[list[Tensor]] = [[] for _ in state]
    products = torch.zeros(2, dtype=torch.float64)
    for i, (p, r, f) in enumerate(zip(params, retain, forget)):
        old = [s[i] for s in state]
        if float(hyper64[i, 0]) == 0.0:
            us.append(torch.zeros_like(p, dtype=torch.float64))
            for k, s in enumerate(old):
                new_state[k].append(s.double().clone())
            continue
        d = direction(r, f, w64[i].tolist(), mode)
        u, s_new = base_update(p, d, old, hyper64[i].tolist(), kind)
        us.append(u)
        for k, s in enumerate(s_new):
            new_state[k].append(s)
        products += torch.stack([(dense(r) * u).sum(), (f.double() * u).sum()]).cpu()
    return us, new_state, products


def step(
    params: Sequence[Tensor],
    retain: Sequence[Retain],
    forget: Sequence[Tensor],
    state: Sequence[Sequence[Tensor]],
    hyper: Tensor,
    weights: Tensor,
    kind: str,
    mode: str = "linear",
) -> tuple[list[Tensor], list[list[Tensor]], Tensor]:
    """What :meth:`Backend.step` computes: ``(new params, new state, [Σ r·u, Σ f·u])``, all
    float64 (``p − lr·u``; skipped rows, with lr 0 and ``u = 0``, unchanged)."""
    us, new_state, products = advance(params, retain, forget, state, hyper, weights, kind, mode)
    lrs = hyper.double().cpu()[:, 0].tolist()
    new_params = [p.double() - lr * u for p, u, lr in zip(params, us, lrs)]
    return new_params, new_state, products


def perturb(
    backup: Sequence[Tensor], direction_: Sequence[Tensor], scale: Sequence[float]
) -> list[Tensor]:
    """``backup_i + scale_i·direction_i`` in float64."""
    return [b.double() + float(s) * d.double() for b, d, s in zip(backup, direction_, scale)]

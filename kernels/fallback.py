"""The per-tensor PyTorch path of the Triton backend, with the kernels' arithmetic.

Tensors the kernels cannot address as flat memory (non-contiguous ones) go through these
functions, one tensor at a time and without host synchronisation (per-tensor scalars stay
0-d device tensors). The arithmetic is the kernels' (:mod:`.step`, :mod:`.gram`,
:mod:`.gen`): the direction formed in float64 from float64 weights
(:func:`fastngd.rules.elementwise.combine`) and rounded once to the accumulation dtype, the
base update in the accumulation dtype with constants derived in float64, products and Gram
entries in float64, one rounding on store.

Work goes slice by slice along the first dimension (:data:`SLICE` elements at most, at least
one row), so the temporaries stay a few MB whatever the tensor size.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fastngd.backends.base import accumulation_dtype
from fastngd.compact import QuantizedTensor
from fastngd.rules.elementwise import combine

__all__ = ["SLICE", "Scalars", "base_update", "fused_tensor", "gram_tensor", "perturb_tensor"]

#: elements per slice (bounds the temporaries).
SLICE = 1 << 20


def _slices(shape: torch.Size, limit: int = SLICE) -> Iterator[slice | None]:
    """Slices along dim 0 of about ``limit`` elements (``None``: the whole 0-d tensor)."""
    if len(shape) == 0:
        yield None
        return
    row = max(1, shape[1:].numel())
    step = max(1, limit // row)
    for s in range(0, shape[0], step):
        yield slice(s, min(s + step, shape[0]))


def _part(t: Tensor, sl: slice | None) -> Tensor:
    return t if sl is None else t[sl]


def _read(t: Any, sl: slice | None, dtype: torch.dtype) -> Tensor:
    """Slice ``sl`` of a tensor or of compact codes (dequantized in float32 first), in
    ``dtype``."""
    if isinstance(t, QuantizedTensor):
        if sl is None:
            return t.dequantize(torch.float32).to(dtype)
        row = t.shape[1:].numel()
        flat = t.dequantize_slice(sl.start * row, sl.stop * row, torch.float32)
        return flat.view((sl.stop - sl.start,) + tuple(t.shape[1:])).to(dtype)
    return _part(t, sl).to(dtype)


@dataclass(frozen=True)
class Scalars:
    """One tensor's hyper row (``lr, weight_decay, beta1, beta2, eps, bc1, bc2``) as 0-d
    device tensors: ``live`` (``lr != 0``, tested in float64) and, in the accumulation dtype,
    ``lr, wd, b1, c1 = 1 − β₁, b2, c2 = 1 − β₂, eps, ibc1 = 1/bc1, isbc2 = 1/√bc2`` (derived
    in float64, rounded once, as the kernels do)."""

    live: Tensor
    lr: Tensor
    wd: Tensor
    b1: Tensor
    c1: Tensor
    b2: Tensor
    c2: Tensor
    eps: Tensor
    ibc1: Tensor
    isbc2: Tensor

    @classmethod
    def from_row(cls, row: Tensor, acc: torch.dtype) -> Scalars:
        """From one row of ``hyper`` (any floating dtype, read as float64)."""
        h = row.to(torch.float64)
        lr, wd, b1, b2, eps, bc1, bc2 = h.unbind()
        vals = (lr, wd, b1, 1.0 - b1, b2, 1.0 - b2, eps, 1.0 / bc1, 1.0 / bc2.sqrt())
        return cls(lr != 0, *(v.to(acc) for v in vals))


def base_update(
    p: Tensor, d: Tensor, s0: Tensor | None, s1: Tensor | None, h: Scalars, kind: str
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(u, s0', s1')`` of base ``kind`` (:data:`fastngd.backends.base.BASE_KINDS`) for the
    direction ``d``, in the dtype of ``d`` (the weight decay term is skipped when ``wd`` is
    0, as torch does)."""
    g = d if kind == "adamw" else torch.where(h.wd != 0, d + h.wd * p, d)
    if kind == "sgd":
        return g, s0, s1
    if kind == "momentum":
        s0 = h.b1 * s0 + g
        return s0, s0, s1
    if kind in ("adam", "adamw"):
        s0 = h.b1 * s0 + h.c1 * g
        s1 = h.b2 * s1 + h.c2 * (g * g)
        u = (s0 * h.ibc1) / (s1.sqrt() * h.isbc2 + h.eps)
        if kind == "adamw":
            u = torch.where(h.wd != 0, u + h.wd * p, u)
        return u, s0, s1
    raise ValueError(f"unknown base {kind!r}")


def _products(r: Tensor, f: Tensor, u: Tensor, live: Tensor) -> Tensor:
    u64 = u.to(torch.float64)
    out = torch.stack([(r * u64).sum(), (f * u64).sum()])
    return torch.where(live, out, torch.zeros_like(out))


def fused_tensor(
    p: Tensor,
    r: Any,
    f: Tensor,
    state: Sequence[Tensor],
    hyper_row: Tensor,
    w_row: Tensor,
    kind: str,
    mode: str,
    u_out: Tensor | None = None,
    backup_out: Tensor | None = None,
) -> Tensor:
    """One tensor of the fused pass: the state advanced in place and either ``p`` updated
    (``step``) or, given ``u_out`` and ``backup_out``, ``u`` and ``p``'s bits written there
    (``advance``; they may be ``r`` and ``f`` themselves). Returns ``[r·u, f·u]`` (float64);
    a skipped tensor (``lr == 0``) keeps ``p`` and its state, gets ``u = 0``, products 0."""
    acc = accumulation_dtype(p.dtype)
    h = Scalars.from_row(hyper_row, acc)
    w64 = w_row.to(torch.float64)
    total = torch.zeros(2, dtype=torch.float64, device=p.device)
    for sl in _slices(p.shape):
        r64, f64 = _read(r, sl, torch.float64), _read(f, sl, torch.float64)
        p_raw = _part(p, sl)
        d = combine(r64, f64, w64[0], w64[1], mode).to(acc)
        old = [_part(s, sl) for s in state]
        u, s0, s1 = base_update(p_raw.to(acc), d, *(old + [None, None])[:2], h, kind)
        u = torch.where(h.live, u, torch.zeros_like(u))
        total += _products(r64, f64, u, h.live)  # before any write: u_out may alias r
        for s_old, s_new in zip(old, (s0, s1)):
            s_old.copy_(torch.where(h.live, s_new, s_old))
        if u_out is None:
            p_raw.copy_(torch.where(h.live, (p_raw.to(acc) - h.lr * u).to(p.dtype), p_raw))
        else:
            _part(u_out, sl).copy_(u)
            _part(backup_out, sl).copy_(p_raw)
    return total


def gram_tensor(r: Any, f: Tensor) -> Tensor:
    """``[‖r‖², ‖f‖², r·f]`` of one tensor, products and sums in float64."""
    out = torch.zeros(3, dtype=torch.float64, device=f.device)
    for sl in _slices(f.shape):
        r64, f64 = _read(r, sl, torch.float64), _read(f, sl, torch.float64)
        out += torch.stack([(r64 * r64).sum(), (f64 * f64).sum(), (r64 * f64).sum()])
    return out


def perturb_tensor(p: Tensor, backup: Tensor, direction: Tensor, scale: Tensor) -> None:
    """``p ← round(backup + s·direction)`` in the accumulation dtype, exactly ``backup``
    where ``s`` (a 0-d float64 tensor, rounded once to the accumulation dtype) is 0."""
    acc = accumulation_dtype(p.dtype)
    s = scale.to(acc)
    for sl in _slices(p.shape):
        b = _part(backup, sl)
        moved = (b.to(acc) + s * _part(direction, sl).to(acc)).to(p.dtype)
        _part(p, sl).copy_(torch.where(s == 0, b, moved))

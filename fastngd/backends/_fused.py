"""The per-item math of the torch backend: Gram partials, the base update, and the products.

Everything here works on one work item's operands, already in the accumulation dtype and hot
in cache (:mod:`fastngd.backends._items`); each function is a handful of in-place torch ops,
so that an item's memory is read from RAM once and its dot products are taken from cache.

Scale: dot products are formed in the accumulation dtype (fast BLAS) and **recomputed in
float64** when the float32 result could be wrong: not finite (an overflow of squares of
gradients ≳ 1e19) or below :data:`TINY` = 2⁻¹⁰⁰ (where squares of gradients ≲ 1e-23 may have
underflowed; the float32 products lost below 2⁻¹⁴⁹ each are then at most 2⁻³¹ of the result).
Float32/bf16/fp16 values squared in float64 neither overflow nor underflow, so the Gram
scalars and products are right for every finite input of those dtypes.

On accelerators (:func:`deferred`) a host read per dot product would synchronise each time:
the Gram rows stay on the device until one copy at the end of the call
(:func:`gram_row_deferred`, :func:`settle_rows`, which recomputes the doubtful rows in
float64 from the unchanged operands), and the update's products are formed in float64 on
the device directly (:func:`dot_exact`: their operands are overwritten by the update). Float64 tensors are
summed in float64 directly (right while the sums themselves are representable:
norms between about 1e-154 and 1e154).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from fastngd.rules.elementwise import combine

__all__ = ["TINY", "advance", "deferred", "dot", "dot_exact", "gram_row", "gram_row_deferred",
           "settle_rows"]

#: float32 dot products below this are recomputed in float64 (see the module docstring).
TINY = 2.0 ** -100
#: use torch's fused CPU Adam kernel for Adam's moments when it exists (see _adam_kernel).
USE_ADAM_KERNEL = True


def _dot(a: Tensor, b: Tensor) -> float:
    return float(torch.dot(a.reshape(-1), b.reshape(-1)))


def _good(x: float) -> bool:
    return math.isfinite(x) and abs(x) >= TINY


def dot(a: Tensor, b: Tensor) -> float:
    """``a·b`` (same shapes), right for every finite input (see the module docstring)."""
    x = _dot(a, b)
    if a.dtype == torch.float64 or _good(x):
        return x
    return _dot(a.double(), b.double())


def gram_row(r: Tensor, f: Tensor, first: tuple[float, float, float] | None = None,
             ) -> tuple[float, float, float]:
    """``(r·r, f·f, r·f)`` of one item, right for every finite input: recomputed in float64
    when a float32 square sum is not finite or below :data:`TINY` (zero included). ``first``:
    the float32 sums already formed (by the native loop), else three torch dots."""
    rr, ff, rf = first if first is not None else (_dot(r, r), _dot(f, f), _dot(r, f))
    if r.dtype == torch.float64 or (_good(rr) and _good(ff) and math.isfinite(rf)):
        return rr, ff, rf
    r64, f64 = r.double(), f.double()
    return _dot(r64, r64), _dot(f64, f64), _dot(r64, f64)


def deferred(device: torch.device) -> bool:
    """Whether scalars stay on the device until the end of a backend call: on accelerators
    (reading each one on the host would synchronise once per dot product), not on the CPU."""
    return device.type != "cpu"


def gram_row_deferred(r: Tensor, f: Tensor) -> Tensor:
    """``[r·r, f·f, r·f]`` in the accumulation dtype, left on the device (no host
    synchronisation); :func:`settle_rows` checks them and recomputes the doubtful ones."""
    r, f = r.reshape(-1), f.reshape(-1)
    return torch.stack([torch.dot(r, r), torch.dot(f, f), torch.dot(r, f)])


def settle_rows(rows: Sequence[Tensor], recompute: Callable[[int], tuple[float, float, float]],
                ) -> list[list[float]]:
    """The rows of :func:`gram_row_deferred` on the host with one copy, each one kept when
    :func:`gram_row`'s check passes and otherwise replaced by ``recompute(k)`` (its float64
    value)."""
    if not rows:
        return []
    wide = rows[0].dtype == torch.float64
    host = torch.stack(list(rows)).double().cpu().tolist()
    return [row if wide or (_good(row[0]) and _good(row[1]) and math.isfinite(row[2]))
            else list(recompute(k)) for k, row in enumerate(host)]


def dot_exact(a: Tensor, b: Tensor, chunk: int = 1 << 22) -> Tensor:
    """``a·b`` as a float64 0-d tensor on the device, formed in float64 by chunks of ``chunk``
    elements (bounded temporaries; right for every finite float32/bf16/fp16 input, no host
    synchronisation). Devices without float64 (MPS) get the float32 dot."""
    a, b = a.reshape(-1), b.reshape(-1)
    if a.dtype == torch.float64 or a.device.type == "mps":
        return torch.dot(a, b)
    if a.numel() <= chunk:
        return torch.dot(a.double(), b.double())
    return torch.stack([torch.dot(a[s:s + chunk].double(), b[s:s + chunk].double())
                        for s in range(0, a.numel(), chunk)]).sum()


def _split(w: float, dtype: torch.dtype) -> tuple[float, float]:
    """``(w₁, w₂)`` with ``w₁·w₂ = w`` and both normal numbers of ``dtype`` (float32
    arithmetic rounds a scalar such as 1e-41 to a subnormal with a few bits, or 1e40 to inf);
    ``(1, w)`` when ``w`` itself is one. ``w₁`` is a power of two (an exact scaling)."""
    if dtype == torch.float64 or w == 0 or not math.isfinite(w) or 2.0**-125 <= abs(w) <= 2.0**126:
        return 1.0, w
    w1 = math.ldexp(1.0, math.frexp(abs(w))[1] // 2)
    return w1, w / w1


def _direction(r: Tensor, f: Tensor, w_r: float, w_f: float, mode: str) -> Tensor:
    """``d`` as a fresh tensor (the scratch buffer of the item). A weight outside the
    accumulation dtype's normal range is applied in two exact-range factors (the combine
    modes are positively homogeneous in each input, the mask depending on signs only)."""
    (a1, a2), (b1, b2) = _split(w_r, r.dtype), _split(w_f, f.dtype)
    if a1 != 1.0:
        r = r * a1
    if b1 != 1.0:
        f = f * b1
    if mode == "linear":
        d = torch.mul(r, a2)
        return d.sub_(f, alpha=b2)
    return combine(r, f, a2, b2, mode)


def advance(kind: str, mode: str, p: Tensor, r: Tensor, f: Tensor, state: Sequence[Tensor],
            row: Sequence[float], w: Sequence[float]) -> tuple[Tensor, float]:
    """Advance the base's ``state`` (in place) with the direction of ``(r, f)``; returns
    ``(v, s)`` with the update ``u = s·v`` (:mod:`fastngd.backends.base` gives the formulas;
    the scalar ``s`` saves passes over the item). ``row`` is the tensor's ``hyper`` row, ``w``
    its ``(w_R, w_F)``. ``v`` may be the momentum buffer itself: callers must not write to it
    (``s`` is then 1)."""
    _, wd, b1 = row[0], row[1], row[2]
    if kind in ("adam", "adamw"):
        return _adam(kind, mode, p, r, f, state, row, w)
    if kind not in ("sgd", "momentum"):
        raise ValueError(f"unknown base {kind!r}")
    g = _direction(r, f, w[0], w[1], mode)
    if wd:
        g.add_(p, alpha=wd)
    if kind == "sgd":
        return g, 1.0
    buf = state[0]
    buf.mul_(b1).add_(g)
    return buf, 1.0


def _adam(kind: str, mode: str, p: Tensor, r: Tensor, f: Tensor, state: Sequence[Tensor],
          row: Sequence[float], w: Sequence[float]) -> tuple[Tensor, float]:
    """:func:`advance` for Adam and AdamW. ``u = (m/bc₁)/(√v/√bc₂ + ε)`` is formed as
    ``k·m/(√v + ε√bc₂)`` with ``k = √bc₂/bc₁``; where torch's fused CPU Adam kernel exists
    (:func:`_adam_kernel`) the moments and ``m/(√v + ε√bc₂)`` take one pass of it, fed
    ``d/w_R = r − (w_F/w_R)·f`` with ``w_R`` as its (float32) gradient scale for float32 items
    (one pass fewer to form d).
    AdamW's ``u + wd·θ`` is ``wd·(θ + (k/wd)·m/(√v + ε√bc₂))`` (the products and the step
    scale by ``wd`` in float64)."""
    _, wd, b1, b2, eps, bc1, bc2 = row
    root = math.sqrt(bc2)
    k = root / bc1
    m, v = state
    decay = kind == "adamw" and wd and k / wd < 1e30
    g, scale = _scaled_direction(r, f, w[0], w[1], mode)
    if wd and kind == "adam":
        g.add_(p, alpha=wd / scale)
    neg = _adam_kernel(g, m, v, b1, b2, eps * root, scale)  # −m/(√v + ε√bc₂), or None
    if neg is not None:
        if decay:  # u/wd = θ − (k/wd)·neg
            return torch.add(p, neg, alpha=-k / wd, out=neg), wd
        if kind == "adamw" and wd:
            return neg.mul_(-k).add_(p, alpha=wd), 1.0
        return neg, -k
    if scale != 1.0:
        g.mul_(scale)
    m.lerp_(g, 1.0 - b1)  # torch's own ops, several passes over the item
    v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
    denom = torch.sqrt(v, out=g).add_(eps * root)
    if decay:
        return torch.addcdiv(p, m, denom, value=k / wd, out=denom), wd
    u = torch.div(m, denom, out=denom)
    if kind == "adamw" and wd:
        u.mul_(k).add_(p, alpha=wd)
        return u, 1.0
    return u, k


def _scaled_direction(r: Tensor, f: Tensor, w_r: float, w_f: float,
                      mode: str) -> tuple[Tensor, float]:
    """``(g, c)`` with ``d = c·g``: for a linear rule with ``w_R ≠ 0``, ``g = r − (w_F/w_R)·f``
    in one pass and ``c = w_R`` (when the ratio is a normal number of the dtype); else
    ``(d, 1)``."""
    ratio = w_f / w_r if w_r else math.inf
    if (mode == "linear" and USE_ADAM_KERNEL and _ADAM_KERNEL is not None and w_r
            and r.dtype == torch.float32 and _split(ratio, r.dtype)[0] == 1.0
            and _split(1.0 / w_r, r.dtype)[0] == 1.0):
        return torch.sub(r, f, alpha=ratio), w_r
    return _direction(r, f, w_r, w_f, mode), 1.0


#: torch's fused Adam kernel on the CPU (a private op of ``torch.optim.Adam(fused=True)``),
#: or None on versions without it. The bias corrections are not its business here: it gets
#: a step number so large that its own corrections are exactly 1.
_ADAM_KERNEL = getattr(torch, "_fused_adam_", None)
_NO_CORRECTION = 2.0**100


def _adam_kernel(g: Tensor, m: Tensor, v: Tensor, b1: float, b2: float, eps: float,
                 scale: float = 1.0) -> Tensor | None:
    """Adam's moments advanced with the gradient ``scale·g`` and ``−m/(√v + eps)`` returned,
    in one pass of torch's fused CPU kernel (run on a zero "parameter" with learning rate 1,
    which it leaves there; ``g`` is overwritten); None where the kernel does not apply (not a CPU float32/float64
    item, or no such kernel), and the caller uses plain ops."""
    if (_ADAM_KERNEL is None or not USE_ADAM_KERNEL or g.device.type != "cpu"
            or g.dtype not in (torch.float32, torch.float64) or not g.is_contiguous()
            or not (m.is_contiguous() and v.is_contiguous() and m.shape == g.shape)):
        return None
    x = torch.zeros_like(g)
    step = torch.tensor(_NO_CORRECTION, dtype=torch.float32)
    inverse = None if scale == 1.0 else torch.tensor(1.0 / scale, dtype=torch.float32)
    _ADAM_KERNEL([x], [g], [m], [v], [], [step], lr=1.0, beta1=b1, beta2=b2, weight_decay=0.0,
                 eps=eps, amsgrad=False, maximize=False, grad_scale=inverse, found_inf=None)
    return x

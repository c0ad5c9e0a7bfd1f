"""The fused base-optimizer pass: direction, base update and the products ``g·u``, one launch.

Per element of tensor i (see :mod:`fastngd.backends.base` for the notation and the bases):

1. ``d = combine(r, f, w_R, w_F, mode)`` (:func:`._common.direction`), formed in float64 from
   the float64 weights and rounded once to the accumulation dtype (float32, or float64 for
   float64 tensors): a weight beyond float32's range (``1/‖r‖`` of a gradient of norm 1e-40)
   cannot overflow, and ``d`` is rounded once;
2. the base ``KIND`` (0 sgd, 1 momentum, 2 adam, 3 adamw) advances its state once with ``d``
   and gives ``u`` (accumulation dtype, state in the accumulation dtype);
3. ``step`` (``ADVANCE`` off): ``p ← p − lr_i·u``, rounded once to the storage dtype;
   ``advance`` (``ADVANCE`` on): ``u`` (rounded to the storage dtype) and a bit-exact backup
   of ``p`` are written (exact storage: ``u`` over ``R``, the backup over ``F``; compact: ``u``
   over ``F``, the backup to ``X``), ``p`` is not written;
4. the products ``r·u`` and ``f·u`` in float64 (exact products of float32 numbers, so right
   at every finite scale), summed per chunk into ``partials`` ``(rows, 2)``; the second stage
   (:func:`.reduce.sum_rows`) adds them in a fixed order.

Memory traffic per element (reads + writes): sgd 4 (p, r, f; p), momentum 6, adam/adamw 8
(p, r, f, m, v; p, m, v): with the Gram pass's 2 reads, adam is the 10 accesses of the
design. ``advance`` reads the same and writes u and the backup instead of p.

Per-tensor scalars are read from device memory at the program's bucket index: ``hyper`` row
(``lr, weight_decay, beta1, beta2, eps, bc1, bc2``) and ``weights`` row ``(w_R, w_F)``, both
float64; the derived constants (``1 − β``, ``1/bc1``, ``1/√bc2``) are formed in float64 and
rounded once. A row whose ``lr`` is exactly 0 is *skipped*: nothing of it is read or written
by ``step``; ``advance`` reads and backs up ``p`` and writes ``u = 0``, and leaves the state.

Launch geometry (see :class:`._common.Geometry`), chosen for an H100 (3.35 TB/s over 132
SMs; at ≈ 0.7–1 µs of loaded latency an SM needs ≈ 20–25 kB of loads in flight): chunks
of 16384 elements, 8 warps, and vector steps of ``[BLOCK // V, V]`` tiles with ``V`` 16 bytes
of the widest operand per thread (:func:`tile_dtype`: float32 4, bfloat16 8 without state,
4 beside float32 moments) and one row per thread, so that every operand is one vector
access and the float64 partial products are summed per thread (one float64 accumulator per
thread and product, not one per element). Register use from ptxas for sm_90 (Triton 3.9),
and programs of 256 threads resident per SM: float32 sgd 48 (5), adam 73 (3), bfloat16 sgd
80 (3), adam 73 (3), Gram 46 / 60 (5 / 4), perturb 30 / 43 (8 / 5), no spills; every case
keeps 30–60 kB of loads in flight per SM. Warps run their vector steps independently (no
barrier in the loop), and a chunk's two dependent prologue loads (its table row, then its
hyper row) are hidden behind the other resident programs. A chunk of 16384 keeps the table
and the products' partials small (under 0.1 % of the traffic) and still gives a bucket of
a few million elements a program per SM slot. Whole chunks run without masks (the only
partial chunk is a tensor's last one, or a skipped row, and it runs only its vector steps
that hold elements); with every pointer of the table 16-byte aligned the kernels declare it
(``ALIGN``), so that loads and stores compile to vector instructions
(``tests/kernels/test_gpu_codegen.py`` checks the PTX).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from fastngd.backends.base import accumulation_dtype

from ._common import (
    COL_F,
    COL_P,
    COL_S0,
    COL_S1,
    COL_X,
    Geometry,
    acc_dtype,
    block_offsets,
    chunk_row,
    direction,
    elem_dtype,
    every,
    load_retain,
    mode_id,
    retain_pointers,
    round_to,
    row_pointer,
)
from .launch import launch
from .pointer_table import ChunkTable
from .reduce import sum_rows

__all__ = ["KIND_IDS", "fused", "tile_dtype"]

#: base kinds, numbered as the kernel's ``KIND`` constexpr.
KIND_IDS = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 3}
#: number of columns of the ``hyper`` table.
HYPER_WIDTH = 7


@triton.jit
def _row_scalars(hyper_ptr, index, ACC: tl.constexpr):
    """The tensor's hyper row: ``lr`` (float64, for the skip test) and, in ``ACC``:
    ``lr, wd, β₁, 1 − β₁, β₂, 1 − β₂, ε, 1/bc1, 1/√bc2`` (derived in float64)."""
    h = hyper_ptr + index * 7
    lr = tl.load(h).to(tl.float64)
    wd = tl.load(h + 1).to(tl.float64)
    b1 = tl.load(h + 2).to(tl.float64)
    b2 = tl.load(h + 3).to(tl.float64)
    eps = tl.load(h + 4).to(tl.float64)
    ibc1 = 1.0 / tl.load(h + 5).to(tl.float64)
    isbc2 = 1.0 / tl.sqrt(tl.load(h + 6).to(tl.float64))
    return (lr, lr.to(ACC), wd.to(ACC), b1.to(ACC), (1.0 - b1).to(ACC), b2.to(ACC),
            (1.0 - b2).to(ACC), eps.to(ACC), ibc1.to(ACC), isbc2.to(ACC))


@triton.jit
def _divide(x, y, ACC: tl.constexpr):
    """``x / y`` correctly rounded (float32 ``/`` may compile to an approximate division)."""
    if ACC == tl.float64:
        q = x / y
    else:
        q = tl.math.div_rn(x, y)
    return q


@triton.jit
def _root(x, ACC: tl.constexpr):
    """``√x`` correctly rounded."""
    if ACC == tl.float64:
        s = tl.sqrt(x)
    else:
        s = tl.sqrt_rn(x)
    return s


@triton.jit
def base_update(p, d, s0, s1, wd, b1, c1, b2, c2, eps, ibc1, isbc2,
                KIND: tl.constexpr, ACC: tl.constexpr):
    """``(u, s0', s1')`` of base ``KIND`` for direction ``d`` (torch's semantics; the
    weight decay term is skipped when ``wd == 0``, as torch does, so an infinite ``p`` with
    no decay does not make ``u`` NaN). ``c1 = 1 − β₁``, ``c2 = 1 − β₂``."""
    g = d
    if KIND != 3:
        g = tl.where(wd != 0, d + wd * p, d)
    if KIND == 0:
        u = g
    elif KIND == 1:
        s0 = b1 * s0 + g
        u = s0
    else:
        s0 = b1 * s0 + c1 * g
        s1 = b2 * s1 + c2 * (g * g)
        u = _divide(s0 * ibc1, _root(s1, ACC) * isbc2 + eps, ACC)
        if KIND == 3:
            u = tl.where(wd != 0, u + wd * p, u)
    return u, s0, s1


@triton.jit
def _fused_block(
    p_ptr, r_ptr, a_ptr, f_ptr, x_ptr, s0_ptr, s1_ptr, code_ptr, offs, mask, live,
    lr, wd, b1, c1, b2, c2, eps, ibc1, isbc2, wr, wf, acc_r, acc_f,
    ELEM: tl.constexpr, ACC: tl.constexpr, KIND: tl.constexpr, MODE: tl.constexpr,
    QUANT: tl.constexpr, ADVANCE: tl.constexpr,
):
    """One vector step: ``mask`` the elements of the tensor, ``live`` those of a live row."""
    p_raw = tl.load(p_ptr + offs, mask=mask, other=0.0)
    r = load_retain(r_ptr, a_ptr, code_ptr, offs, live, QUANT).to(tl.float64)
    f = tl.load(f_ptr + offs, mask=live, other=0.0).to(tl.float64)
    d = direction(r, f, wr, wf, MODE).to(ACC)
    s0 = d
    s1 = d
    if KIND >= 1:
        s0 = tl.load(s0_ptr + offs, mask=live, other=0.0)
    if KIND >= 2:
        s1 = tl.load(s1_ptr + offs, mask=live, other=0.0)
    p = p_raw.to(ACC)
    u, s0, s1 = base_update(p, d, s0, s1, wd, b1, c1, b2, c2, eps, ibc1, isbc2, KIND, ACC)
    if KIND >= 1:
        tl.store(s0_ptr + offs, s0, mask=live)
    if KIND >= 2:
        tl.store(s1_ptr + offs, s1, mask=live)
    u = tl.where(live, u, 0.0)
    if ADVANCE:
        if QUANT:
            tl.store(f_ptr + offs, round_to(u, ELEM), mask=mask)
            tl.store(x_ptr + offs, p_raw, mask=mask)
        else:
            tl.store(r_ptr + offs, round_to(u, ELEM), mask=mask)
            tl.store(f_ptr + offs, p_raw, mask=mask)
    else:
        tl.store(p_ptr + offs, round_to(p - lr * u, ELEM), mask=live)
    u64 = u.to(tl.float64)
    return acc_r + tl.sum(r * u64, 1), acc_f + tl.sum(f * u64, 1)


@triton.jit
def _fused_kernel(
    table, hyper_ptr, w_ptr, partials, code_ptr,
    ELEM: tl.constexpr, ACC: tl.constexpr, KIND: tl.constexpr, MODE: tl.constexpr,
    QUANT: tl.constexpr, ADVANCE: tl.constexpr, ALIGN: tl.constexpr,
    CHUNK: tl.constexpr, BLOCK: tl.constexpr, V: tl.constexpr,
):
    base, start, n, index = chunk_row(table, CHUNK)
    p_ptr = row_pointer(base, COL_P, ELEM, ALIGN)
    r_ptr, a_ptr = retain_pointers(base, ELEM, QUANT, ALIGN)
    f_ptr = row_pointer(base, COL_F, ELEM, ALIGN)
    x_ptr = row_pointer(base, COL_X, ELEM, ALIGN)
    s0_ptr = row_pointer(base, COL_S0, ACC, ALIGN)
    s1_ptr = row_pointer(base, COL_S1, ACC, ALIGN)
    lr64, lr, wd, b1, c1, b2, c2, eps, ibc1, isbc2 = _row_scalars(hyper_ptr, index, ACC)
    wr = tl.load(w_ptr + index * 2).to(tl.float64)
    wf = tl.load(w_ptr + index * 2 + 1).to(tl.float64)
    n_live = tl.where(lr64 != 0, n, 0)  # a zero lr masks the row's reads and updates
    acc_r = tl.zeros([BLOCK // V], tl.float64)  # per-thread partial products
    acc_f = tl.zeros([BLOCK // V], tl.float64)
    if start + CHUNK <= n_live:  # a whole live chunk: unmasked, vectorizable accesses
        for i in range(0, CHUNK, BLOCK):
            offs = block_offsets(start, i, BLOCK, V)
            whole = every(BLOCK, V)
            acc_r, acc_f = _fused_block(
                p_ptr, r_ptr, a_ptr, f_ptr, x_ptr, s0_ptr, s1_ptr, code_ptr, offs, whole, whole,
                lr, wd, b1, c1, b2, c2, eps, ibc1, isbc2, wr, wf, acc_r, acc_f,
                ELEM, ACC, KIND, MODE, QUANT, ADVANCE)
    else:  # a tensor's last chunk or a skipped row: masked, only the vector steps needed
        end = n_live - start  # step: none for a skipped row
        if ADVANCE:
            end = n - start  # advance: every element is backed up
        for j in range(0, end, BLOCK):
            offs = block_offsets(start, j, BLOCK, V)
            live = offs < n_live
            mask = live  # step: a skipped row is not even read
            if ADVANCE:
                mask = offs < n  # advance: every row is backed up
            acc_r, acc_f = _fused_block(
                p_ptr, r_ptr, a_ptr, f_ptr, x_ptr, s0_ptr, s1_ptr, code_ptr, offs, mask, live,
                lr, wd, b1, c1, b2, c2, eps, ibc1, isbc2, wr, wf, acc_r, acc_f,
                ELEM, ACC, KIND, MODE, QUANT, ADVANCE)
    out = partials + tl.program_id(0).to(tl.int64) * 2
    tl.store(out, tl.sum(acc_r, 0))
    tl.store(out + 1, tl.sum(acc_f, 0))


def tile_dtype(dtype: torch.dtype, kind: str) -> torch.dtype:
    """The element type that sets the fused kernel's tile (:meth:`._common.Geometry.tile`):
    the state's when the base has one (float32 moments beside bfloat16 parameters: 4
    elements per thread, one 16-byte access for each moment), else the parameters'."""
    return dtype if kind == "sgd" else accumulation_dtype(dtype)


def fused(
    table: ChunkTable,
    hyper: Tensor,
    weights: Tensor,
    dtype: torch.dtype,
    kind: str,
    mode: str,
    geometry: Geometry,
    advance: bool = False,
    quant: bool = False,
    code: Tensor | None = None,
) -> Tensor:
    """Run the fused pass over ``table`` (tensors of storage ``dtype``) and the products'
    second stage; returns ``[Σ r·u, Σ f·u]`` (float64, shape ``(2,)``). ``advance`` selects
    ``advance_and_backup`` instead of ``step``. Two launches."""
    if kind not in KIND_IDS:
        raise ValueError(f"unknown base {kind!r}; valid: {', '.join(KIND_IDS)}")
    if quant and code is None:
        raise ValueError("compact storage needs the code table")
    partials = torch.empty((table.num_rows, 2), dtype=torch.float64, device=table.rows.device)
    launch(
        _fused_kernel, (table.num_rows,), table.rows, hyper, weights, partials,
        code if quant else partials,
        ELEM=elem_dtype(dtype), ACC=acc_dtype(dtype), KIND=KIND_IDS[kind], MODE=mode_id(mode),
        QUANT=quant, ADVANCE=advance, ALIGN=geometry.hint(table.aligned),
        CHUNK=geometry.chunk, **geometry.tile(tile_dtype(dtype, kind)),
        num_warps=geometry.num_warps,
    )
    out = torch.empty(2, dtype=torch.float64, device=table.rows.device)
    sum_rows(partials, out)
    return out

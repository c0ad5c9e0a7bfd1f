"""Fused multi-tensor Gram reduction ``[rr, ff, rf] = [Σ‖r_i‖², Σ‖f_i‖², Σ r_i·f_i]``.

Stage 1 (one launch, one program per table row = chunk) writes per-chunk partials
``(rows, 3)`` in the accumulation dtype; stage 2 (one launch, one program) adds the rows in
a fixed order. No atomics, so the result is bitwise identical from run to run.

Table columns: exact ``[r, f, start, n, index]``; compact ``[codes, absmax, f, start, n,
index]`` (the retain gradient is dequantized on the fly, so the norms are those of the
stored gradient).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._common import acc_dtype, load_retain
from .launch import launch

__all__ = ["gram"]


@triton.jit
def _gram_partials_kernel(
    table, partials, ref, code_ptr,
    NCOL: tl.constexpr, CHUNK: tl.constexpr, BLOCK: tl.constexpr,
    ACC: tl.constexpr, QUANT: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = table + row * NCOL
    if QUANT:
        r_ptr = tl.load(base).to(tl.pointer_type(tl.uint8))
        a_ptr = tl.load(base + 1).to(tl.pointer_type(tl.float32))
        f_ptr = tl.load(base + 2).to(ref.dtype)
    else:
        r_ptr = tl.load(base).to(ref.dtype)
        a_ptr = r_ptr
        f_ptr = tl.load(base + 1).to(ref.dtype)
    start = tl.load(base + NCOL - 3)
    n = tl.load(base + NCOL - 2)
    acc_rr = tl.zeros([BLOCK], ACC)
    acc_ff = tl.zeros([BLOCK], ACC)
    acc_rf = tl.zeros([BLOCK], ACC)
    for i in tl.static_range(0, CHUNK, BLOCK):
        offs = start + i + tl.arange(0, BLOCK).to(tl.int64)
        mask = offs < n
        r = load_retain(r_ptr, a_ptr, code_ptr, offs, mask, ACC, QUANT)
        f = tl.load(f_ptr + offs, mask=mask, other=0.0).to(ACC)
        acc_rr += r * r
        acc_ff += f * f
        acc_rf += r * f
    out = partials + row * 3
    tl.store(out, tl.sum(acc_rr, 0))
    tl.store(out + 1, tl.sum(acc_ff, 0))
    tl.store(out + 2, tl.sum(acc_rf, 0))


@triton.jit
def _sum_rows_kernel(partials, out, n_rows, BLOCK: tl.constexpr, ACC: tl.constexpr):
    acc0 = tl.zeros([BLOCK], ACC)
    acc1 = tl.zeros([BLOCK], ACC)
    acc2 = tl.zeros([BLOCK], ACC)
    for s in range(0, n_rows, BLOCK):
        rows = s + tl.arange(0, BLOCK).to(tl.int64)
        mask = rows < n_rows
        acc0 += tl.load(partials + rows * 3, mask=mask, other=0.0)
        acc1 += tl.load(partials + rows * 3 + 1, mask=mask, other=0.0)
        acc2 += tl.load(partials + rows * 3 + 2, mask=mask, other=0.0)
    tl.store(out, tl.sum(acc0, 0))
    tl.store(out + 1, tl.sum(acc1, 0))
    tl.store(out + 2, tl.sum(acc2, 0))


def gram(
    table: Tensor,
    ref: Tensor,
    chunk: int,
    block: int,
    quant: bool = False,
    code: Tensor | None = None,
    sum_block: int = 256,
) -> Tensor:
    """Run both stages over ``table``; ``ref`` is any tensor of the bucket (its dtype selects
    the element type). Returns ``[rr, ff, rf]`` (shape ``(3,)``, accumulation dtype)."""
    acc_t = torch.float64 if ref.dtype == torch.float64 else torch.float32
    rows = table.shape[0]
    out = torch.empty(3, dtype=acc_t, device=ref.device)
    partials = torch.empty((rows, 3), dtype=acc_t, device=ref.device)
    code_arg = code if code is not None else partials
    launch(
        _gram_partials_kernel, (rows,), table, partials, ref, code_arg,
        NCOL=table.shape[1], CHUNK=chunk, BLOCK=block, ACC=acc_dtype(ref.dtype), QUANT=quant,
    )
    launch(_sum_rows_kernel, (1,), partials, out, rows, BLOCK=sum_block, ACC=acc_dtype(ref.dtype))
    return out

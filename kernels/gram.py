"""Fused multi-tensor Gram reduction ``[rr, ff, rf] = [Σ‖r_i‖², Σ‖f_i‖², Σ r_i·f_i]``.

Stage 1 (one launch, one program per table row = chunk) writes per-chunk float64 partials
``(rows, 3)``; stage 2 (:mod:`.reduce`, one launch) adds them in a fixed order, over the
whole bucket or per tensor. No atomics: bitwise identical from run to run.

Scale. Every element is converted to float64 before it is squared or multiplied: the
product of two float32 (or bfloat16/float16) numbers is exact in float64 (24 + 24 < 53
significand bits) and float64 holds every such product, from (1.4e-45)² ≈ 2e-90 to
(3.4e38)² ≈ 1.2e77, and any sum of 2⁶³ of them. So the Gram is right (to float64 rounding
of the sums) for **every finite input** of those storage dtypes; no per-task prescaling is
needed. For float64 storage the products are float64 too, right for ``|x|`` up to about
1e154 (beyond that, a square overflows).

Why float64 rather than float32 partials with prescaling: the pass is memory-bound by a
wide margin. On an H100 SXM (3.35 TB/s, 132 SMs at 1.98 GHz) a float32 bucket streams
8 bytes (r, f) per element, 4.2e11 elements/s; they need 3 float64 FMAs (1.3e12/s against
about 1.7e13/s of float64 FMA, 8 %) and 2 float32→float64 conversions (8.4e11/s against
about 4.2e12/s at 16 per clock per SM, 20 %). bfloat16 doubles both (16 % and 40 %): still
under the instruction budget, and one pass instead of the two a prescaled float32 sum needs
(a maximum, then the scaled sums).

Table columns: ``R`` (values, or uint8 codes with ``A`` the float32 block scales: the norms
are those of the stored gradient) and ``F``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._common import (
    COL_F,
    Geometry,
    block_offsets,
    chunk_row,
    elem_dtype,
    every,
    load_retain,
    retain_pointers,
    row_pointer,
)
from .launch import launch
from .pointer_table import ChunkTable
from .reduce import segment_sums, sum_rows

__all__ = ["gram"]


@triton.jit
def _gram_block(r_ptr, a_ptr, f_ptr, code_ptr, offs, mask, rr, ff, rf, QUANT: tl.constexpr):
    r = load_retain(r_ptr, a_ptr, code_ptr, offs, mask, QUANT).to(tl.float64)
    f = tl.load(f_ptr + offs, mask=mask, other=0.0).to(tl.float64)
    return rr + tl.sum(r * r, 1), ff + tl.sum(f * f, 1), rf + tl.sum(r * f, 1)


@triton.jit
def _gram_partials_kernel(
    table, partials, code_ptr,
    ELEM: tl.constexpr, QUANT: tl.constexpr, ALIGN: tl.constexpr,
    CHUNK: tl.constexpr, BLOCK: tl.constexpr, V: tl.constexpr,
):
    base, start, n, _ = chunk_row(table, CHUNK)
    r_ptr, a_ptr = retain_pointers(base, ELEM, QUANT, ALIGN)
    f_ptr = row_pointer(base, COL_F, ELEM, ALIGN)
    rr = tl.zeros([BLOCK // V], tl.float64)  # per-thread partial sums
    ff = tl.zeros([BLOCK // V], tl.float64)
    rf = tl.zeros([BLOCK // V], tl.float64)
    if start + CHUNK <= n:  # a whole chunk: unmasked, vectorizable accesses
        for i in range(0, CHUNK, BLOCK):
            offs = block_offsets(start, i, BLOCK, V)
            rr, ff, rf = _gram_block(r_ptr, a_ptr, f_ptr, code_ptr, offs, every(BLOCK, V), rr, ff,
                                     rf, QUANT)
    else:  # a tensor's last chunk: masked, and only its vector steps that hold elements
        for j in range(0, n - start, BLOCK):
            offs = block_offsets(start, j, BLOCK, V)
            rr, ff, rf = _gram_block(r_ptr, a_ptr, f_ptr, code_ptr, offs, offs < n, rr, ff, rf,
                                     QUANT)
    out = partials + tl.program_id(0).to(tl.int64) * 3
    tl.store(out, tl.sum(rr, 0))
    tl.store(out + 1, tl.sum(ff, 0))
    tl.store(out + 2, tl.sum(rf, 0))


def gram(
    table: ChunkTable,
    dtype: torch.dtype,
    geometry: Geometry,
    quant: bool = False,
    code: Tensor | None = None,
    per_tensor: int = 0,
) -> Tensor:
    """Run both stages over ``table`` (tensors of storage ``dtype``). Returns ``[rr, ff, rf]``
    (shape ``(3,)``, float64) or, with ``per_tensor = n`` (the bucket size), one row per
    tensor at its bucket index (shape ``(n, 3)``; rows of tensors not in the table are 0).
    ``code``: the 256-entry float32 code table (compact storage)."""
    device = table.rows.device
    partials = torch.empty((table.num_rows, 3), dtype=torch.float64, device=device)
    if quant and code is None:
        raise ValueError("compact storage needs the code table")
    launch(
        _gram_partials_kernel, (table.num_rows,), table.rows, partials,
        code if quant else partials,
        ELEM=elem_dtype(dtype), QUANT=quant, ALIGN=geometry.hint(table.aligned),
        CHUNK=geometry.chunk, **geometry.tile(dtype), num_warps=geometry.num_warps,
    )
    if per_tensor:
        out = torch.zeros((per_tensor, 3), dtype=torch.float64, device=device)
        segment_sums(partials, table, out)
    else:
        out = torch.empty(3, dtype=torch.float64, device=device)
        sum_rows(partials, out)
    return out

"""Blockwise 8-bit quantisation kernel (the code of :mod:`fastngd.compact`).

One program per table row (columns ``F`` the input, ``R`` the uint8 codes, ``A`` the float32
block scales; the chunk size is a multiple of 256 so chunks start on block boundaries), ``BLOCK // 256`` blocks of 256
at a time as a 2-D tile. Per block of 256 elements: absmax
(NaN-propagating), ``y = |x| / absmax`` with a correctly rounded division, the magnitude
index ``j = #{midpoints < y}`` found by a 7-step branchless binary search over the 127
midpoints, and the code ``128·[x < 0] + j``. The codes equal those of
:func:`fastngd.compact.quantize_blockwise` bit for bit.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._common import COL_A, COL_F, COL_R, chunk_row, elem_dtype, row_pointer
from .launch import launch
from .pointer_table import ChunkTable

__all__ = ["quantize"]


@triton.jit
def _quantize_kernel(
    table, mids_ptr, ELEM: tl.constexpr, CHUNK: tl.constexpr, BLOCK: tl.constexpr
):
    NB: tl.constexpr = BLOCK // 256
    base, start, n, _ = chunk_row(table, CHUNK)
    x_ptr = row_pointer(base, COL_F, ELEM, 1)
    c_ptr = row_pointer(base, COL_R, tl.uint8, 1)
    a_ptr = row_pointer(base, COL_A, tl.float32, 1)
    for i in range(0, CHUNK, BLOCK):
        blk = (start + i) // 256 + tl.arange(0, NB).to(tl.int64)  # [NB] block indices
        offs = blk[:, None] * 256 + tl.arange(0, 256)[None, :]  # [NB, 256]
        mask = offs < n
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        ax = tl.abs(x)
        has_nan = tl.sum((x != x).to(tl.int32), 1) > 0  # noqa: PLR0124 (NaN test)
        amax = tl.where(has_nan, float("nan"), tl.max(ax, 1))
        tl.store(a_ptr + blk, amax, mask=blk * 256 < n)
        safe = tl.where(amax > 0, amax, 1.0)
        y = tl.math.div_rn(ax, tl.broadcast_to(safe[:, None], (NB, 256)))
        j = tl.zeros([NB, 256], tl.int32)
        for step in tl.static_range(6, -1, -1):
            probe = j + (1 << step)
            mid = tl.load(mids_ptr + probe - 1)
            j = tl.where(mid < y, probe, j)
        code = tl.where(x < 0, j + 128, j)
        tl.store(c_ptr + offs, code.to(tl.uint8), mask=mask)


def quantize(
    table: ChunkTable, dtype: torch.dtype, mids: Tensor, chunk: int, block: int = 1024,
    num_warps: int = 4,
) -> None:
    """Launch the quantize kernel over ``table`` (inputs of ``dtype``; ``mids``: the 127
    float32 midpoints); ``block`` elements (a multiple of 256 dividing ``chunk``) per vector
    step."""
    if chunk % 256:
        raise ValueError(f"the quantize chunk must be a multiple of 256, got {chunk}")
    block = min(max(block, 256), chunk)
    if block % 256 or chunk % block:
        raise ValueError(f"the quantize block must be a multiple of 256 dividing {chunk}, got {block}")
    launch(_quantize_kernel, (table.num_rows,), table.rows, mids, ELEM=elem_dtype(dtype),
           CHUNK=chunk, BLOCK=block, num_warps=num_warps)

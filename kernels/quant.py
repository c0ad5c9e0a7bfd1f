"""Blockwise 8-bit quantisation kernel (the code of :mod:`fastngd.compact`).

One program per table row (``[x, codes, absmax, start, n, index]``; the chunk size is a
multiple of 256 so chunks start on block boundaries), ``BLOCK // 256`` blocks of 256
at a time as a 2-D tile. Per block of 256 elements: absmax
(NaN-propagating), ``y = |x| / absmax`` with a correctly rounded division, the magnitude
index ``j = #{midpoints < y}`` found by a 7-step branchless binary search over the 127
midpoints, and the code ``128·[x < 0] + j``. The codes equal those of
:func:`fastngd.compact.quantize_blockwise` bit for bit.
"""
from __future__ import annotations

import triton
import triton.language as tl
from torch import Tensor

from .launch import launch

__all__ = ["quantize"]


@triton.jit
def _quantize_kernel(
    table, ref, mids_ptr, NCOL: tl.constexpr, CHUNK: tl.constexpr, BLOCK: tl.constexpr
):
    NB: tl.constexpr = BLOCK // 256
    row = tl.program_id(0).to(tl.int64)
    base = table + row * NCOL
    x_ptr = tl.load(base).to(ref.dtype)
    c_ptr = tl.load(base + 1).to(tl.pointer_type(tl.uint8))
    a_ptr = tl.load(base + 2).to(tl.pointer_type(tl.float32))
    start = tl.load(base + NCOL - 3)
    n = tl.load(base + NCOL - 2)
    for i in tl.static_range(0, CHUNK, BLOCK):
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


def quantize(table: Tensor, ref: Tensor, mids: Tensor, chunk: int, block: int = 1024) -> None:
    """Launch the quantize kernel over ``table`` (``mids``: the 127 float32 midpoints);
    ``block`` elements (a multiple of 256 dividing ``chunk``) per vector step."""
    if chunk % 256:
        raise ValueError(f"the quantize chunk must be a multiple of 256, got {chunk}")
    block = min(max(block, 256), chunk)
    if block % 256 or chunk % block:
        raise ValueError(f"the quantize block must be a multiple of 256 dividing {chunk}, got {block}")
    launch(_quantize_kernel, (table.shape[0],), table, ref, mids, NCOL=table.shape[1], CHUNK=chunk,
           BLOCK=block)

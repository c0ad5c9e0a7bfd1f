"""Second stage of the multi-tensor reductions: per-chunk float64 partials added up in a fixed
order, without atomics, so every result is bitwise identical from run to run.

The first stages (:mod:`.gram`, :mod:`.step`) write one row of ``width`` float64 partial
sums per table row (chunk). :func:`sum_rows` adds all rows (one program: it reads
``rows·width·8`` bytes, a few hundred kB for a billion elements, against the first stage's
gigabytes); :func:`segment_sums` adds each tensor's rows (one program per tensor, the rows
of a tensor being consecutive in the table) and writes the sum to the tensor's row of the
output, at its bucket index.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .launch import launch
from .pointer_table import ChunkTable

__all__ = ["segment_sums", "sum_rows"]

#: partial rows per vector step of the second stage.
ROWS_BLOCK = 256
#: columns of the 2-D tile (a power of two ≥ every width used: 2 or 3).
WIDTH_P2 = 4


@triton.jit
def _add_rows(partials, first, count, WIDTH: tl.constexpr, BLOCK: tl.constexpr):
    """Column sums of rows ``first … first + count − 1`` of a ``(rows, WIDTH)`` float64
    array, as a ``[WIDTH_P2]`` vector (lanes ≥ ``WIDTH`` are 0): lane-wise in row order,
    then one fixed reduction tree."""
    cols = tl.arange(0, 4)
    acc = tl.zeros([BLOCK, 4], tl.float64)
    for s in range(0, count, BLOCK):
        rows = s + tl.arange(0, BLOCK).to(tl.int64)
        mask = (rows[:, None] < count) & (cols[None, :] < WIDTH)
        acc += tl.load(partials + (first + rows[:, None]) * WIDTH + cols[None, :], mask=mask,
                       other=0.0)
    return tl.sum(acc, 0)


@triton.jit
def _sum_rows_kernel(partials, out, n_rows, WIDTH: tl.constexpr, BLOCK: tl.constexpr):
    cols = tl.arange(0, 4)
    total = _add_rows(partials, 0, n_rows, WIDTH, BLOCK)
    tl.store(out + cols, total, mask=cols < WIDTH)


@triton.jit
def _segment_sums_kernel(partials, segments, out, WIDTH: tl.constexpr, BLOCK: tl.constexpr):
    seg = segments + tl.program_id(0).to(tl.int64) * 3
    first = tl.load(seg)
    count = tl.load(seg + 1)
    index = tl.load(seg + 2)
    cols = tl.arange(0, 4)
    total = _add_rows(partials, first, count, WIDTH, BLOCK)
    tl.store(out + index * WIDTH + cols, total, mask=cols < WIDTH)


def sum_rows(partials: Tensor, out: Tensor) -> None:
    """``out[j] = Σ_rows partials[row, j]`` (``partials`` ``(rows, width)`` float64,
    ``out`` ``(width,)`` float64), in a fixed order; one launch."""
    _check(partials, out)
    launch(_sum_rows_kernel, (1,), partials, out, partials.shape[0], WIDTH=partials.shape[1],
           BLOCK=ROWS_BLOCK)


def segment_sums(partials: Tensor, table: ChunkTable, out: Tensor) -> None:
    """``out[index_k] = Σ`` of tensor k's rows of ``partials`` for every tensor k of
    ``table`` (``out`` ``(n, width)`` float64; rows of tensors not in the table are left as
    they are), in a fixed order; one launch."""
    _check(partials, out)
    launch(_segment_sums_kernel, (table.num_tensors,), partials, table.segments, out,
           WIDTH=partials.shape[1], BLOCK=ROWS_BLOCK)


def _check(partials: Tensor, out: Tensor) -> None:
    width = partials.shape[1]
    if partials.dtype != torch.float64 or out.dtype != torch.float64:
        raise TypeError("partials and their sums are float64")
    if not 1 <= width <= WIDTH_P2 or out.shape[-1] != width:
        raise ValueError(f"partials of width {width} and sums of shape {tuple(out.shape)}")
    if not (partials.is_contiguous() and out.is_contiguous()):
        raise ValueError("partials and their sums must be contiguous")

"""GeN perturbation from the backup: ``p_i ← B_i + s_i·D_i``, one launch.

The direction ``D`` and the backup ``B`` are written by the fused pass
(:func:`.step.fused` with ``advance``). Here ``p = round(B + s·D)`` in the accumulation
dtype (float32, float64 for float64 tensors; ``s`` is read as float64 and rounded once),
and exactly ``B`` (bit for bit, whatever ``D`` holds, infinities included) where ``s_i``
is 0: that is the restore. Traffic: read B, D; write p (3 accesses per element).

Table columns: ``P`` (parameter), ``X`` (backup), ``R`` (direction).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._common import (
    COL_P,
    COL_R,
    COL_X,
    Geometry,
    acc_dtype,
    block_offsets,
    chunk_row,
    elem_dtype,
    every,
    round_to,
    row_pointer,
)
from .launch import launch
from .pointer_table import ChunkTable

__all__ = ["perturb"]


@triton.jit
def _perturb_block(p_ptr, b_ptr, d_ptr, offs, mask, s, ELEM: tl.constexpr, ACC: tl.constexpr):
    b = tl.load(b_ptr + offs, mask=mask, other=0.0)
    d = tl.load(d_ptr + offs, mask=mask, other=0.0).to(ACC)
    moved = round_to(b.to(ACC) + s * d, ELEM)
    tl.store(p_ptr + offs, tl.where(s == 0, b, moved), mask=mask)


@triton.jit
def _perturb_kernel(
    table, s_ptr,
    ELEM: tl.constexpr, ACC: tl.constexpr, ALIGN: tl.constexpr,
    CHUNK: tl.constexpr, BLOCK: tl.constexpr, V: tl.constexpr,
):
    base, start, n, index = chunk_row(table, CHUNK)
    p_ptr = row_pointer(base, COL_P, ELEM, ALIGN)
    b_ptr = row_pointer(base, COL_X, ELEM, ALIGN)
    d_ptr = row_pointer(base, COL_R, ELEM, ALIGN)
    s = tl.load(s_ptr + index).to(ACC)
    if start + CHUNK <= n:  # a whole chunk: unmasked, vectorizable accesses
        for i in range(0, CHUNK, BLOCK):
            offs = block_offsets(start, i, BLOCK, V)
            _perturb_block(p_ptr, b_ptr, d_ptr, offs, every(BLOCK, V), s, ELEM, ACC)
    else:  # a tensor's last chunk: masked, and only its vector steps that hold elements
        for j in range(0, n - start, BLOCK):
            offs = block_offsets(start, j, BLOCK, V)
            _perturb_block(p_ptr, b_ptr, d_ptr, offs, offs < n, s, ELEM, ACC)


def perturb(table: ChunkTable, scale: Tensor, dtype: torch.dtype, geometry: Geometry) -> None:
    """Launch the perturb kernel over ``table`` (tensors of storage ``dtype``; ``scale``
    one float64 per bucket index)."""
    launch(
        _perturb_kernel, (table.num_rows,), table.rows, scale,
        ELEM=elem_dtype(dtype), ACC=acc_dtype(dtype), ALIGN=geometry.hint(table.aligned),
        CHUNK=geometry.chunk, **geometry.tile(dtype), num_warps=geometry.num_warps,
    )

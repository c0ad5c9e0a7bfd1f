"""Fused multi-tensor update ``p_i ← p_i − lr_i · d_i`` in one launch.

``d_i = w_R·r_i − w_F·f_i`` (linear) or the SAGO rule (``SAGO`` constexpr; see
:func:`fastngd.kernels._common.direction`). ``lr`` (shape ``(n,)``) and ``w = (w_R, w_F)``
are read from device memory, so the launch needs no host synchronisation. Math in the
accumulation dtype (float32, float64 for float64 tensors), int64 offsets, one rounding on
store. Rows of a tensor with ``lr_i == 0`` are fully masked: nothing is read or written.

Table columns: exact ``[p, r, f, start, n, index]``; compact ``[p, codes, absmax, f, start,
n, index]``.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._common import acc_dtype, direction, load_retain, round_to
from .launch import launch

__all__ = ["update"]


@triton.jit
def _update_kernel(
    table, lr_ptr, w_ptr, ref, code_ptr,
    NCOL: tl.constexpr, CHUNK: tl.constexpr, BLOCK: tl.constexpr,
    ACC: tl.constexpr, SAGO: tl.constexpr, QUANT: tl.constexpr, BF16: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = table + row * NCOL
    p_ptr = tl.load(base).to(ref.dtype)
    if QUANT:
        r_ptr = tl.load(base + 1).to(tl.pointer_type(tl.uint8))
        a_ptr = tl.load(base + 2).to(tl.pointer_type(tl.float32))
        f_ptr = tl.load(base + 3).to(ref.dtype)
    else:
        r_ptr = tl.load(base + 1).to(ref.dtype)
        a_ptr = r_ptr
        f_ptr = tl.load(base + 2).to(ref.dtype)
    start = tl.load(base + NCOL - 3)
    n = tl.load(base + NCOL - 2)
    idx = tl.load(base + NCOL - 1)
    lr = tl.load(lr_ptr + idx).to(ACC)
    wr = tl.load(w_ptr).to(ACC)
    wf = tl.load(w_ptr + 1).to(ACC)
    n_live = n * (lr != 0).to(tl.int64)  # a zero lr masks the whole row
    for i in tl.static_range(0, CHUNK, BLOCK):
        offs = start + i + tl.arange(0, BLOCK).to(tl.int64)
        mask = offs < n_live
        p = tl.load(p_ptr + offs, mask=mask, other=0.0).to(ACC)
        r = load_retain(r_ptr, a_ptr, code_ptr, offs, mask, ACC, QUANT)
        f = tl.load(f_ptr + offs, mask=mask, other=0.0).to(ACC)
        d = direction(r, f, wr, wf, SAGO)
        tl.store(p_ptr + offs, round_to(p - lr * d, ref.dtype.element_ty, BF16), mask=mask)


def update(
    table: Tensor,
    lr: Tensor,
    weights: Tensor,
    ref: Tensor,
    chunk: int,
    block: int,
    sago: bool = False,
    quant: bool = False,
    code: Tensor | None = None,
) -> None:
    """Launch the update over ``table`` (``ref``: any tensor of the bucket, for its dtype)."""
    launch(
        _update_kernel, (table.shape[0],), table, lr, weights, ref,
        code if code is not None else lr,
        NCOL=table.shape[1], CHUNK=chunk, BLOCK=block, ACC=acc_dtype(ref.dtype),
        SAGO=sago, QUANT=quant, BF16=ref.dtype == torch.bfloat16,
    )

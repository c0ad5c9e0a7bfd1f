"""GeN kernels: materialise the direction while backing the parameters up, and perturb the
parameters from the backup. One launch each.

``direction_and_backup``: ``D_i ← d_i`` (rounded to the parameter dtype) and ``B_i ← p_i``
(bit-exact copy). Exact storage writes ``D = r`` and ``B = f`` in place (table ``[p, r, f,
start, n, index]``); compact storage reads the codes and writes ``D = f``, ``B = backup``
(table ``[p, codes, absmax, f, backup, start, n, index]``).

``perturb``: ``p_i ← B_i + s_i·D_i`` in the accumulation dtype, and exactly ``B_i`` where
``s_i == 0`` (table ``[p, backup, direction, start, n, index]``).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._common import acc_dtype, direction, load_retain, round_to
from .launch import launch

__all__ = ["direction_and_backup", "perturb"]


@triton.jit
def _direction_backup_kernel(
    table, w_ptr, ref, code_ptr,
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
        d_ptr = f_ptr
        b_ptr = tl.load(base + 4).to(ref.dtype)
    else:
        r_ptr = tl.load(base + 1).to(ref.dtype)
        a_ptr = r_ptr
        f_ptr = tl.load(base + 2).to(ref.dtype)
        d_ptr = r_ptr
        b_ptr = f_ptr
    start = tl.load(base + NCOL - 3)
    n = tl.load(base + NCOL - 2)
    wr = tl.load(w_ptr).to(ACC)
    wf = tl.load(w_ptr + 1).to(ACC)
    for i in tl.static_range(0, CHUNK, BLOCK):
        offs = start + i + tl.arange(0, BLOCK).to(tl.int64)
        mask = offs < n
        p = tl.load(p_ptr + offs, mask=mask, other=0.0)
        r = load_retain(r_ptr, a_ptr, code_ptr, offs, mask, ACC, QUANT)
        f = tl.load(f_ptr + offs, mask=mask, other=0.0).to(ACC)
        d = direction(r, f, wr, wf, SAGO)
        tl.store(d_ptr + offs, round_to(d, ref.dtype.element_ty, BF16), mask=mask)
        tl.store(b_ptr + offs, p, mask=mask)


@triton.jit
def _perturb_kernel(
    table, s_ptr, ref,
    NCOL: tl.constexpr, CHUNK: tl.constexpr, BLOCK: tl.constexpr, ACC: tl.constexpr,
    BF16: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = table + row * NCOL
    p_ptr = tl.load(base).to(ref.dtype)
    b_ptr = tl.load(base + 1).to(ref.dtype)
    d_ptr = tl.load(base + 2).to(ref.dtype)
    start = tl.load(base + NCOL - 3)
    n = tl.load(base + NCOL - 2)
    idx = tl.load(base + NCOL - 1)
    s = tl.load(s_ptr + idx).to(ACC)
    for i in tl.static_range(0, CHUNK, BLOCK):
        offs = start + i + tl.arange(0, BLOCK).to(tl.int64)
        mask = offs < n
        b = tl.load(b_ptr + offs, mask=mask, other=0.0)
        d = tl.load(d_ptr + offs, mask=mask, other=0.0).to(ACC)
        moved = round_to(b.to(ACC) + s * d, ref.dtype.element_ty, BF16)
        tl.store(p_ptr + offs, tl.where(s == 0, b, moved), mask=mask)


def direction_and_backup(
    table: Tensor,
    weights: Tensor,
    ref: Tensor,
    chunk: int,
    block: int,
    sago: bool = False,
    quant: bool = False,
    code: Tensor | None = None,
) -> None:
    """Launch the direction/backup kernel over ``table``."""
    launch(
        _direction_backup_kernel, (table.shape[0],), table, weights, ref,
        code if code is not None else weights,
        NCOL=table.shape[1], CHUNK=chunk, BLOCK=block, ACC=acc_dtype(ref.dtype),
        SAGO=sago, QUANT=quant, BF16=ref.dtype == torch.bfloat16,
    )


def perturb(table: Tensor, scale: Tensor, ref: Tensor, chunk: int, block: int) -> None:
    """Launch the perturb kernel over ``table``."""
    launch(
        _perturb_kernel, (table.shape[0],), table, scale, ref,
        NCOL=table.shape[1], CHUNK=chunk, BLOCK=block, ACC=acc_dtype(ref.dtype),
        BF16=ref.dtype == torch.bfloat16,
    )

"""Device helpers shared by the kernel families (Triton ``@jit`` functions) and the launch
geometry.

Every kernel runs one program per row of a :class:`~fastngd.kernels.pointer_table.ChunkTable`
and decodes that row with :func:`chunk_row` and :func:`row_pointer`; the direction of every
combine mode is :func:`direction` (the device twin of
:func:`fastngd.rules.elementwise.combine`).

Only language features of Triton 3.2 are used (``tl.multiple_of`` on scalars, ``tl.pointer_type``
casts of loaded int64 values, ``tl.math.div_rn``/``tl.sqrt_rn``, constexpr dtypes, dynamic
``if`` on scalars, ``range`` loops); ``tests/kernels/test_gpu_codegen.py`` compiles every
kernel for sm_90 with the installed Triton. Checked with Triton 3.2.0 and 3.9.0: the kernel
tests pass under both interpreters and the sm_90 compilation under both code generators.
Triton 3.2's *interpreter* (not its compiler) needs an older NumPy: it turns 1-element
arrays into loop bounds with ``int()``, which NumPy 2.4 refuses (2.2 works, with warnings).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl

from .pointer_table import NCOL, POINTER_COLUMNS

__all__ = [
    "Geometry",
    "acc_dtype",
    "block_offsets",
    "chunk_row",
    "direction",
    "elem_dtype",
    "every",
    "is_interpreted",
    "load_retain",
    "mode_id",
    "retain_pointers",
    "round_to",
    "row_pointer",
]

#: table column numbers (see :mod:`fastngd.kernels.pointer_table`), as compile-time constants.
COL_P = tl.constexpr(POINTER_COLUMNS.index("P"))
COL_R = tl.constexpr(POINTER_COLUMNS.index("R"))
COL_A = tl.constexpr(POINTER_COLUMNS.index("A"))
COL_F = tl.constexpr(POINTER_COLUMNS.index("F"))
COL_X = tl.constexpr(POINTER_COLUMNS.index("X"))
COL_S0 = tl.constexpr(POINTER_COLUMNS.index("S0"))
COL_S1 = tl.constexpr(POINTER_COLUMNS.index("S1"))
TABLE_NCOL = tl.constexpr(NCOL)

_ELEM = {
    torch.float32: tl.float32,
    torch.float64: tl.float64,
    torch.bfloat16: tl.bfloat16,
    torch.float16: tl.float16,
}
#: combine modes, numbered as the kernels' ``MODE`` constexpr.
MODE_IDS = {"linear": 0, "sago": 1, "sago_prefer_retain": 2}


@dataclass(frozen=True)
class Geometry:
    """Launch geometry of the streaming kernels: ``chunk`` elements per program (a table
    row); ``block`` elements per vector step inside a program for 4-byte element types
    (scaled by ``4 / itemsize`` for the others, so that a vector step moves the same bytes);
    ``num_warps`` per program; ``align``: the byte alignment the kernels may assume for
    every pointer of a table that is
    :attr:`~fastngd.kernels.pointer_table.ChunkTable.aligned` (1: assume nothing)."""

    chunk: int
    block: int
    num_warps: int = 8
    align: int = 16

    def hint(self, aligned: bool) -> int:
        """The ``ALIGN`` constexpr for a table (``align`` when aligned, else 1)."""
        return self.align if aligned else 1

    def tile(self, dtype: torch.dtype) -> dict[str, int]:
        """``BLOCK`` (elements per vector step) and ``V`` (elements per thread: 16 bytes of
        ``dtype``, so one vector access per operand) for tensors of ``dtype``: a vector step
        is a ``[BLOCK // V, V]`` tile, one row per thread."""
        size = torch.empty((), dtype=dtype).element_size()
        block = min(self.chunk, max(1, self.block * 4 // size))
        v = max(1, min(16 // size, block // (32 * self.num_warps)))
        return {"BLOCK": block, "V": v}


def elem_dtype(dtype: torch.dtype) -> Any:
    """The Triton element type of a floating torch dtype."""
    if dtype not in _ELEM:
        raise TypeError(f"the Triton kernels handle {sorted(map(str, _ELEM))}, got {dtype}")
    return _ELEM[dtype]


def acc_dtype(dtype: torch.dtype) -> Any:
    """The Triton accumulation dtype: float64 for float64 tensors, float32 otherwise."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def mode_id(mode: str) -> int:
    """The ``MODE`` constexpr of a combine mode (:data:`fastngd.rules.elementwise.MODES`)."""
    if mode not in MODE_IDS:
        raise ValueError(f"unknown combine mode {mode!r}; valid: {', '.join(MODE_IDS)}")
    return MODE_IDS[mode]


def is_interpreted(kernel: Any) -> bool:
    """Whether ``kernel`` was decorated under ``TRITON_INTERPRET=1`` (runs on the host)."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # pragma: no cover - very old triton
        return False
    return isinstance(kernel, InterpretedFunction)


@triton.jit
def chunk_row(table, CHUNK: tl.constexpr):
    """Decode this program's table row: ``(row base, start, n, index)``; ``start`` is
    declared a multiple of ``CHUNK`` (true by construction) for the vectorizer."""
    base = table + tl.program_id(0).to(tl.int64) * TABLE_NCOL
    start = tl.multiple_of(tl.load(base + TABLE_NCOL - 3), CHUNK)
    n = tl.load(base + TABLE_NCOL - 2)
    index = tl.load(base + TABLE_NCOL - 1)
    return base, start, n, index


@triton.jit
def row_pointer(base, COL: tl.constexpr, ELEM: tl.constexpr, ALIGN: tl.constexpr):
    """Column ``COL`` of a row as a pointer to ``ELEM``, declared ``ALIGN``-byte aligned."""
    return tl.multiple_of(tl.load(base + COL).to(tl.pointer_type(ELEM)), ALIGN)


@triton.jit
def retain_pointers(base, ELEM: tl.constexpr, QUANT: tl.constexpr, ALIGN: tl.constexpr):
    """The retain columns of a row: ``(values or codes, block scales)``; without ``QUANT``
    the second is the first again (unused)."""
    if QUANT:
        r_ptr = row_pointer(base, COL_R, tl.uint8, ALIGN)
        a_ptr = row_pointer(base, COL_A, tl.float32, 1)
    else:
        r_ptr = row_pointer(base, COL_R, ELEM, ALIGN)
        a_ptr = r_ptr
    return r_ptr, a_ptr


@triton.jit
def block_offsets(start, i, BLOCK: tl.constexpr, V: tl.constexpr):
    """The int64 offsets of the vector step at ``start + i`` (a multiple of ``BLOCK``), as a
    ``[BLOCK // V, V]`` tile: ``V`` consecutive elements per row, one row per thread, so
    that the per-thread partial sums of a row need no shuffles (``tl.sum(…, 1)``)."""
    tile = tl.arange(0, BLOCK // V)[:, None] * V + tl.arange(0, V)[None, :]
    return tl.multiple_of(start + i, BLOCK) + tile.to(tl.int64)


@triton.jit
def every(BLOCK: tl.constexpr, V: tl.constexpr):
    """An all-true mask of a vector step (folded away by the compiler: whole chunks compile
    to unmasked accesses)."""
    return tl.full([BLOCK // V, V], 1, tl.int1)


@triton.jit
def load_retain(r_ptr, a_ptr, code_ptr, offs, mask, QUANT: tl.constexpr):
    """Load a block of g_R: plain (in its storage dtype) or, with ``QUANT``, dequantized
    from uint8 codes (``r_ptr``) and float32 block scales (``a_ptr``):
    ``table[c]·absmax[i // 256]`` in float32, as :meth:`QuantizedTensor.dequantize_slice`."""
    if QUANT:
        c = tl.load(r_ptr + offs, mask=mask, other=0).to(tl.int32)
        v = tl.load(code_ptr + c, mask=mask, other=0.0)
        a = tl.load(a_ptr + offs // 256, mask=mask, other=0.0)
        r = v * a
    else:
        r = tl.load(r_ptr + offs, mask=mask, other=0.0)
    return r


@triton.jit
def direction(r, f, wr, wf, MODE: tl.constexpr):
    """The direction of combine mode ``MODE`` (0 linear, 1 sago, 2 sago_prefer_retain):
    ``w_R·r − w_F·f``; or, where the signs conflict (``sign(r)·sign(f) > 0``, judged from the
    signs so that no product can underflow), ``w_R·r``, and elsewhere ``−w_F·f`` (sago) or
    ``w_R·r − w_F·f`` (sago_prefer_retain)."""
    if MODE == 0:
        d = r * wr - f * wf
    else:
        conflict = ((r > 0) & (f > 0)) | ((r < 0) & (f < 0))
        keep = r * wr
        if MODE == 1:
            d = tl.where(conflict, keep, f * (-wf))
        else:
            d = tl.where(conflict, keep, keep - f * wf)
    return d


@triton.jit
def round_to(x, ELEM: tl.constexpr):
    """Round a block once to the storage dtype ``ELEM``. For bfloat16 the round-to-nearest-
    even is done on the bits (``bits + 0x7FFF + lsb``, keep the high half), which is what
    GPUs do and what Triton's interpreter, whose own float32→bfloat16 cast truncates, would
    otherwise not match. Infinities stay so, and so do the NaNs arithmetic produces (quiet
    NaNs: their bit 22 is set, so the carry cannot reach the exponent)."""
    if ELEM == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = bits + (((bits >> 16) & 1) + 0x7FFF)
        y = (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        y = x.to(ELEM)
    return y

"""A trivial Triton kernel for the preflight of ``bench/gpu_check.py`` (imports triton: load
it only after ``TRITON_INTERPRET`` is settled). Defined at module level: triton before 3.3
resolves the names a kernel uses (``tl``) in its module's globals, not in a closure."""
from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["add_one"]


@triton.jit
def add_one(x_ptr, n, BLOCK: tl.constexpr):
    """``x[i] ← x[i] + 1`` for ``i < n``."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(x_ptr + offs, tl.load(x_ptr + offs, mask=mask) + 1.0, mask=mask)

"""Device helpers shared by the kernel families (Triton ``@jit`` functions)."""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

__all__ = ["QBLOCK", "acc_dtype", "direction", "is_interpreted", "load_retain", "round_to"]

#: elements per float32 absmax scale in compact storage (matches fastngd.compact).
QBLOCK: int = 256


def acc_dtype(dtype: torch.dtype) -> Any:
    """The Triton accumulation dtype: float64 for float64 tensors, float32 otherwise."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def is_interpreted(kernel: Any) -> bool:
    """Whether ``kernel`` was decorated under ``TRITON_INTERPRET=1`` (runs on the host)."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # pragma: no cover - very old triton
        return False
    return isinstance(kernel, InterpretedFunction)


@triton.jit
def load_retain(r_ptr, a_ptr, code_ptr, offs, mask, ACC: tl.constexpr, QUANT: tl.constexpr):
    """Load a block of g_R: plain (``r_ptr``) or dequantized on the fly from uint8 codes
    (``r_ptr``) and float32 block scales (``a_ptr``): ``table[c]·absmax[i // 256]`` in
    float32, then cast to ``ACC``."""
    if QUANT:
        c = tl.load(r_ptr + offs, mask=mask, other=0).to(tl.int32)
        v = tl.load(code_ptr + c, mask=mask, other=0.0)
        a = tl.load(a_ptr + offs // 256, mask=mask, other=0.0)
        r = (v * a).to(ACC)
    else:
        r = tl.load(r_ptr + offs, mask=mask, other=0.0).to(ACC)
    return r


@triton.jit
def direction(r, f, wr, wf, SAGO: tl.constexpr):
    """``d = w_R·r − w_F·f`` (linear) or, with ``SAGO``, ``d = w_R·r`` where ``r·f > 0``
    (signs agree, judged from the signs so that no product can underflow) and ``−w_F·f``
    elsewhere."""
    if SAGO:
        agree = ((r > 0) & (f > 0)) | ((r < 0) & (f < 0))
        d = tl.where(agree, wr * r, 0.0 - wf * f)
    else:
        d = wr * r - wf * f
    return d


@triton.jit
def round_to(x, DTYPE: tl.constexpr, BF16: tl.constexpr):
    """Round a float32 block once to the storage dtype. For bfloat16 the round-to-nearest-
    even is done on the bits (``bits + 0x7FFF + lsb``, keep the high half; inf and NaN stay
    so), which is what GPUs do and what Triton's interpreter, whose own float32→bfloat16 cast
    truncates, would otherwise not match."""
    if BF16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = bits + (((bits >> 16) & 1) + 0x7FFF)
        y = (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        y = x.to(DTYPE)
    return y

"""Small helpers for the kernel tests: bucket generation and direct table construction."""
from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

from collections.abc import Sequence

import torch
from fastngd.kernels.pointer_table import build_table
from torch import Tensor

#: small launch geometry for the interpreter: ≥ 2 chunks per tensor, ≥ 2 blocks per chunk.
CHUNK = 256
BLOCK = 64
#: odd sizes: several chunks, a partial last chunk, a 1-element tensor.
SIZES = (700, 1, 513, 300)

TOL = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.float64: {"rtol": 1e-12, "atol": 1e-12},
    torch.bfloat16: {"rtol": 1.6e-2, "atol": 1.6e-2},
    torch.float16: {"rtol": 2e-3, "atol": 2e-3},
}


def bucket(dtype: torch.dtype, seed: int, sizes: Sequence[int] = SIZES) -> list[Tensor]:
    """Random normal tensors of ``sizes`` in ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=g, dtype=torch.float64).to(dtype) for n in sizes]


def table(columns: Sequence[Sequence[Tensor]], chunk: int = CHUNK) -> Tensor:
    """A pointer table over the non-empty tensors of ``columns`` (index = position)."""
    idx = [i for i, t in enumerate(columns[0]) if t.numel() > 0]
    ptrs = [[col[i].data_ptr() for i in idx] for col in columns]
    return build_table(ptrs, [columns[0][i].numel() for i in idx], idx, chunk, torch.device("cpu"))


def assert_close64(actual: Tensor, expected: Tensor, dtype: torch.dtype) -> None:
    """``actual`` (any dtype) against a float64 reference with ``dtype``'s tolerance."""
    torch.testing.assert_close(actual.double(), expected.double(), **TOL[dtype])

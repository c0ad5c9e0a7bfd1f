"""Small helpers for the kernel tests: buckets, base-optimizer state and hyper rows, tables."""
from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

from collections.abc import Mapping, Sequence

import torch
from fastngd.kernels._common import Geometry
from fastngd.kernels.pointer_table import ChunkTable, build_table
from torch import Tensor

from fastngd.backends.base import HYPER_COLUMNS, accumulation_dtype, state_names

#: one vector step per chunk (the interpreter's cost is per operation, not per element).
GEO = Geometry(chunk=256, block=256, num_warps=4)
#: several vector steps per chunk.
GEO_MULTI = Geometry(chunk=256, block=64, num_warps=4)
#: a tensor of two chunks (a whole one and a partial one), a 1-element tensor, a small one.
SIZES = (300, 1, 45)
DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
KINDS = ["sgd", "momentum", "adam", "adamw"]
MODES = ["linear", "sago", "sago_prefer_retain"]

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


def state_for(kind: str, params: Sequence[Tensor], seed: int) -> list[list[Tensor]]:
    """A non-trivial state of base ``kind`` for ``params`` (second moments positive)."""
    acc = accumulation_dtype(params[0].dtype)
    g = torch.Generator().manual_seed(seed)
    out = []
    for k, _ in enumerate(state_names(kind)):
        col = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
        out.append([(c.abs() if k == 1 else 0.1 * c).to(acc) for c in col])
    return out


def hyper_rows(n: int, skip: Sequence[int] = (), seed: int = 0) -> Tensor:
    """``(n, 7)`` float64 hyper rows, different per tensor (``lr`` 0 for ``skip``); the
    bias corrections are those of step ``3 + i``."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        b1, b2, t = 0.8 + 0.1 * torch.rand(1, generator=g).item(), 0.99, 3 + i
        lr = 0.0 if i in skip else 0.05 * (1 + i)
        rows.append([lr, 0.01 * (i % 3), b1, b2, 1e-6, 1 - b1**t, 1 - b2**t])
    out = torch.tensor(rows, dtype=torch.float64)
    assert out.shape[1] == len(HYPER_COLUMNS)
    return out


def weight_rows(n: int, seed: int = 0) -> Tensor:
    """``(n, 2)`` float64 weights, different per tensor."""
    g = torch.Generator().manual_seed(seed)
    return 0.2 + torch.rand(n, 2, generator=g, dtype=torch.float64)


def table(columns: Mapping[str, Sequence[Tensor]], chunk: int = GEO.chunk) -> ChunkTable:
    """A pointer table over the non-empty tensors of ``columns`` (index = position)."""
    first = next(iter(columns.values()))
    idx = [i for i, t in enumerate(first) if t.numel() > 0]
    ptrs = {c: [col[i].data_ptr() for i in idx] for c, col in columns.items()}
    return build_table(ptrs, [first[i].numel() for i in idx], idx, chunk, torch.device("cpu"))


def clone(ts: Sequence[Tensor]) -> list[Tensor]:
    """Copies of ``ts``."""
    return [t.clone() for t in ts]


def same_bits(a: Sequence[Tensor], b: Sequence[Tensor]) -> bool:
    """Whether two lists of tensors are bitwise identical (NaN payloads included)."""
    return all(x.dtype == y.dtype and torch.equal(x.view(torch.uint8), y.view(torch.uint8))
               for x, y in zip(a, b))


def assert_close64(actual: Tensor, expected: Tensor, dtype: torch.dtype, scale: float = 1.0) -> None:
    """``actual`` (any dtype) against a float64 reference with ``dtype``'s tolerance."""
    tol = TOL[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=tol["rtol"] * scale,
                               atol=tol["atol"] * scale)

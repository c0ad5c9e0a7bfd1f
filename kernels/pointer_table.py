"""Cached int64 pointer tables of fixed-size chunks.

A multi-tensor kernel runs one program per *chunk*: a slice of ``chunk`` consecutive
elements of one tensor. For tensors ``i`` with ``n_i > 0`` elements, the table has
``Σ_i ⌈n_i / chunk⌉`` rows and :data:`NCOL` int64 columns, the same for every kernel:

    [P, R, A, F, X, S0, S1, start, n_i, index_i]

The seven pointer columns (:data:`POINTER_COLUMNS`) hold data pointers (0 where a kernel
does not use the column): ``P`` the parameter, ``R`` the retain gradient (or its codes),
``A`` the compact block scales, ``F`` the forget gradient, ``X`` an extra output (a backup),
``S0``/``S1`` the base optimizer's state. ``start = k·chunk`` is the chunk's first element
within the tensor, ``n_i`` the numel (the mask bound) and ``index_i`` the tensor's position
in its bucket (the row of the per-tensor scalars ``hyper``, ``weights``, ``scale``).

One fixed layout means one row decoder (:func:`fastngd.kernels._common.row_pointer`) for
every kernel, at the price of a few unused int64 columns: 80 bytes per chunk of 16384
elements, under 0.1 % of even the cheapest kernel's traffic.

Besides the rows, a :class:`ChunkTable` keeps, per tensor, ``[first row, number of rows,
index]`` (:attr:`ChunkTable.segments`: the per-tensor second stage sums each tensor's chunk
partials in a fixed order) and whether every pointer is :data:`ALIGN_BYTES`-aligned (the
kernels then tell the compiler so, which lets it use 16-byte vector loads and stores).

Tables live on the tensors' device and are cached: a table is rebuilt only when a data
pointer, a numel, an index or the chunk size changes.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "ALIGN_BYTES",
    "NCOL",
    "POINTER_COLUMNS",
    "CacheInfo",
    "ChunkTable",
    "PointerTableCache",
    "build_table",
]

#: the pointer columns of every table, in order.
POINTER_COLUMNS = ("P", "R", "A", "F", "X", "S0", "S1")
#: number of int64 columns: the pointers, then ``start``, ``n``, ``index``.
NCOL = len(POINTER_COLUMNS) + 3
#: pointer alignment (bytes) under which the kernels may use 16-byte vector accesses.
ALIGN_BYTES = 16


@dataclass(frozen=True)
class CacheInfo:
    """Counters of a :class:`PointerTableCache`: ``builds`` (tables built), ``hits``
    (lookups served from the cache) and ``size`` (tables currently held)."""

    builds: int
    hits: int
    size: int


@dataclass(frozen=True)
class ChunkTable:
    """A pointer table and what the kernels need besides it.

    ``rows``: ``(rows, NCOL)`` int64 (see the module docstring); ``segments``: ``(k, 3)``
    int64, ``[first row, number of rows, index]`` of each of the ``k`` tensors; ``aligned``:
    every pointer is a multiple of :data:`ALIGN_BYTES`.
    """

    rows: Tensor
    segments: Tensor
    aligned: bool

    @property
    def num_rows(self) -> int:
        """Number of chunks (programs of a launch over the table)."""
        return int(self.rows.shape[0])

    @property
    def num_tensors(self) -> int:
        """Number of tensors (programs of a per-tensor second stage)."""
        return int(self.segments.shape[0])


def build_table(
    ptrs: Mapping[str, Sequence[int]],
    numels: Sequence[int],
    indices: Sequence[int],
    chunk: int,
    device: torch.device,
) -> ChunkTable:
    """Build the table of ``numels``-sized tensors on ``device``.

    ``ptrs[c][k]`` is the data pointer of column ``c`` (one of :data:`POINTER_COLUMNS`) for
    the ``k``-th tensor; columns not given are 0.
    """
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    unknown = set(ptrs) - set(POINTER_COLUMNS)
    if unknown:
        raise ValueError(f"unknown pointer columns {sorted(unknown)}; valid: {POINTER_COLUMNS}")
    k = len(numels)
    if k == 0:
        raise ValueError("a pointer table needs at least one tensor")
    if len(indices) != k or any(len(col) != k for col in ptrs.values()):
        raise ValueError("every pointer column, numels and indices must have the same length")
    if any(n <= 0 for n in numels):
        raise ValueError("zero-size tensors must be left out of a pointer table")
    n_t = torch.tensor(list(numels), dtype=torch.int64)
    idx_t = torch.tensor(list(indices), dtype=torch.int64)
    counts = (n_t + chunk - 1) // chunk
    owner = torch.repeat_interleave(torch.arange(k), counts)
    first_row = torch.cumsum(counts, 0) - counts
    starts = (torch.arange(owner.numel()) - first_row[owner]) * chunk
    zeros = torch.zeros(owner.numel(), dtype=torch.int64)
    cols = [
        torch.tensor(list(ptrs[c]), dtype=torch.int64)[owner] if c in ptrs else zeros
        for c in POINTER_COLUMNS
    ]
    cols += [starts, n_t[owner], idx_t[owner]]
    rows = torch.stack(cols, dim=1).contiguous().to(device)
    segments = torch.stack([first_row, counts, idx_t], dim=1).contiguous().to(device)
    aligned = all(p % ALIGN_BYTES == 0 for col in ptrs.values() for p in col)
    return ChunkTable(rows, segments, aligned)


class PointerTableCache:
    """An LRU cache of :class:`ChunkTable` keyed by (tag, chunk, device, pointers, numels,
    indices). ``get`` returns the cached table or builds a new one."""

    def __init__(self, max_size: int = 64) -> None:
        if max_size <= 0:
            raise ValueError(f"max_size must be positive, got {max_size}")
        self.max_size = max_size
        self._tables: OrderedDict[Hashable, ChunkTable] = OrderedDict()
        self._builds = 0
        self._hits = 0

    def get(
        self,
        tag: str,
        columns: Mapping[str, Sequence[Tensor]],
        numels: Sequence[int],
        indices: Sequence[int],
        chunk: int,
    ) -> ChunkTable:
        """The table for ``columns`` (column name → one tensor per table tensor)."""
        if not columns or not any(len(col) for col in columns.values()):
            raise ValueError("a pointer table needs at least one column and one tensor")
        device = next(iter(columns.values()))[0].device
        ptrs = {c: tuple(t.data_ptr() for t in col) for c, col in sorted(columns.items())}
        key = (tag, chunk, str(device), tuple(ptrs.items()), tuple(numels), tuple(indices))
        table = self._tables.get(key)
        if table is not None:
            self._hits += 1
            self._tables.move_to_end(key)
            return table
        table = build_table(ptrs, numels, indices, chunk, device)
        self._builds += 1
        self._tables[key] = table
        if len(self._tables) > self.max_size:
            self._tables.popitem(last=False)
        return table

    def cache_info(self) -> CacheInfo:
        """Current counters."""
        return CacheInfo(self._builds, self._hits, len(self._tables))

    def clear(self) -> None:
        """Drop every table (counters are kept)."""
        self._tables.clear()

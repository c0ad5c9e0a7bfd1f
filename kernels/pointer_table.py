"""Cached int64 pointer tables of fixed-size chunks.

A multi-tensor kernel runs one program per *chunk*: a slice of ``chunk`` consecutive
elements of one tensor. For tensors ``i`` with ``n_i > 0`` elements, the table has
``Σ_i ⌈n_i / chunk⌉`` rows and ``m + 3`` int64 columns,

    [ptr(column_0[i]), …, ptr(column_{m−1}[i]), start, n_i, index_i]

with ``start = k·chunk`` (the chunk's first element within the tensor), ``n_i`` the numel
(the mask bound) and ``index_i`` the tensor's position in its bucket (used to read
per-tensor scalars such as ``lr_i``). The table lives on the tensors' device and is cached:
it is rebuilt only when a data pointer, a numel, an index or the chunk size changes.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CacheInfo", "PointerTableCache", "build_table"]


@dataclass(frozen=True)
class CacheInfo:
    """Counters of a :class:`PointerTableCache`: ``builds`` (tables built), ``hits``
    (lookups served from the cache) and ``size`` (tables currently held)."""

    builds: int
    hits: int
    size: int


def build_table(
    ptrs: Sequence[Sequence[int]],
    numels: Sequence[int],
    indices: Sequence[int],
    chunk: int,
    device: torch.device,
) -> Tensor:
    """Build the ``(rows, m + 3)`` int64 table (see the module docstring) on ``device``.

    ``ptrs[c][k]`` is the data pointer of column ``c`` for the ``k``-th tensor.
    """
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    k = len(numels)
    if len(indices) != k or any(len(col) != k for col in ptrs):
        raise ValueError("every pointer column, numels and indices must have the same length")
    if any(n <= 0 for n in numels):
        raise ValueError("zero-size tensors must be left out of a pointer table")
    n_t = torch.tensor(list(numels), dtype=torch.int64)
    counts = (n_t + chunk - 1) // chunk
    owner = torch.repeat_interleave(torch.arange(k), counts)
    first_row = torch.cumsum(counts, 0) - counts
    starts = (torch.arange(owner.numel()) - first_row[owner]) * chunk
    cols = [torch.tensor(list(col), dtype=torch.int64)[owner] for col in ptrs]
    cols += [starts, n_t[owner], torch.tensor(list(indices), dtype=torch.int64)[owner]]
    return torch.stack(cols, dim=1).contiguous().to(device)


class PointerTableCache:
    """An LRU cache of pointer tables keyed by (tag, chunk, device, pointers, numels,
    indices). ``get`` returns the cached table or builds a new one."""

    def __init__(self, max_size: int = 64) -> None:
        if max_size <= 0:
            raise ValueError(f"max_size must be positive, got {max_size}")
        self.max_size = max_size
        self._tables: OrderedDict[Hashable, Tensor] = OrderedDict()
        self._builds = 0
        self._hits = 0

    def get(
        self,
        tag: str,
        columns: Sequence[Sequence[Tensor]],
        numels: Sequence[int],
        indices: Sequence[int],
        chunk: int,
    ) -> Tensor:
        """The table for ``columns`` (each a list of tensors, one per table row owner)."""
        if not columns or not columns[0]:
            raise ValueError("a pointer table needs at least one column and one tensor")
        device = columns[0][0].device
        ptrs: tuple[tuple[int, ...], ...] = tuple(
            tuple(t.data_ptr() for t in col) for col in columns
        )
        key = (tag, chunk, str(device), ptrs, tuple(numels), tuple(indices))
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

"""Pointer tables: row layout, segments, alignment, and cache invalidation exactly on
address/shape changes."""
from __future__ import annotations

import pytest
import torch
from fastngd.kernels.pointer_table import NCOL, POINTER_COLUMNS, PointerTableCache, build_table

CPU = torch.device("cpu")


def test_rows_cover_every_chunk_once_in_the_fixed_layout() -> None:
    t = build_table({"P": [1024, 2048, 3072], "F": [7, 8, 9]}, [700, 1, 512], [0, 2, 5], 256, CPU)
    assert t.rows.dtype == torch.int64 and t.rows.shape == (3 + 1 + 2, NCOL)
    p, f = POINTER_COLUMNS.index("P"), POINTER_COLUMNS.index("F")
    other = [c for c in range(len(POINTER_COLUMNS)) if c not in (p, f)]
    assert t.rows[:, other].eq(0).all()  # unused pointer columns are 0
    assert t.rows[:, p].tolist() == [1024] * 3 + [2048] + [3072] * 2
    assert t.rows[:, f].tolist() == [7] * 3 + [8] + [9] * 2
    assert t.rows[:, -3:].tolist() == [
        [0, 700, 0], [256, 700, 0], [512, 700, 0], [0, 1, 2], [0, 512, 5], [256, 512, 5],
    ]
    assert t.segments.tolist() == [[0, 3, 0], [3, 1, 2], [4, 2, 5]]
    assert (t.num_rows, t.num_tensors) == (6, 3)


def test_alignment_is_that_of_every_pointer() -> None:
    assert build_table({"P": [1024, 2048], "R": [16, 32]}, [3, 3], [0, 1], 256, CPU).aligned
    assert not build_table({"P": [1024, 2048], "R": [16, 36]}, [3, 3], [0, 1], 256, CPU).aligned


def test_build_table_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="zero-size"):
        build_table({"P": [1]}, [0], [0], 256, CPU)
    with pytest.raises(ValueError, match="same length"):
        build_table({"P": [1, 2]}, [3], [0], 256, CPU)
    with pytest.raises(ValueError, match="chunk"):
        build_table({"P": [1]}, [3], [0], 0, CPU)
    with pytest.raises(ValueError, match="unknown pointer columns"):
        build_table({"Q": [1]}, [3], [0], 256, CPU)
    with pytest.raises(ValueError, match="at least one tensor"):
        build_table({"P": []}, [], [], 256, CPU)
    with pytest.raises(ValueError, match="max_size"):
        PointerTableCache(0)


def test_cache_rebuilds_exactly_when_an_address_or_shape_changes() -> None:
    cache = PointerTableCache()
    a, b = torch.zeros(600), torch.zeros(10)
    t1 = cache.get("x", {"P": [a, b]}, [600, 10], [0, 1], 256)
    assert cache.cache_info().builds == 1
    t2 = cache.get("x", {"P": [a, b]}, [600, 10], [0, 1], 256)
    assert t2 is t1 and cache.cache_info().builds == 1 and cache.cache_info().hits == 1
    b2 = torch.zeros(10)  # same shape, new address
    cache.get("x", {"P": [a, b2]}, [600, 10], [0, 1], 256)
    assert cache.cache_info().builds == 2
    cache.get("x", {"P": [a, b2]}, [600, 9], [0, 1], 256)  # shape change
    assert cache.cache_info().builds == 3
    cache.get("y", {"P": [a, b2]}, [600, 10], [0, 1], 256)  # another op
    assert cache.cache_info().builds == 4
    cache.get("x", {"F": [a, b2]}, [600, 10], [0, 1], 256)  # same pointers, other column
    assert cache.cache_info().builds == 5
    b.add_(1.0)  # in-place writes keep the address: still cached
    assert cache.get("x", {"P": [a, b]}, [600, 10], [0, 1], 256) is t1
    assert cache.cache_info().builds == 5


def test_cache_is_bounded_lru() -> None:
    cache = PointerTableCache(max_size=2)
    ts = [torch.zeros(4) for _ in range(3)]
    for t in ts:
        cache.get("x", {"P": [t]}, [4], [0], 256)
    assert cache.cache_info().size == 2
    cache.get("x", {"P": [ts[0]]}, [4], [0], 256)  # evicted: rebuilt
    assert cache.cache_info().builds == 4
    cache.clear()
    assert cache.cache_info().size == 0

"""Pointer tables: row layout and cache invalidation exactly on address/shape changes."""
from __future__ import annotations

import pytest
import torch
from fastngd.kernels.pointer_table import PointerTableCache, build_table


def test_rows_cover_every_chunk_once() -> None:
    t = build_table([[1000, 2000, 3000], [7, 8, 9]], [700, 1, 512], [0, 2, 5], 256,
                    torch.device("cpu"))
    assert t.dtype == torch.int64 and t.shape == (3 + 1 + 2, 5)
    expected = [
        [1000, 7, 0, 700, 0], [1000, 7, 256, 700, 0], [1000, 7, 512, 700, 0],
        [2000, 8, 0, 1, 2],
        [3000, 9, 0, 512, 5], [3000, 9, 256, 512, 5],
    ]
    assert t.tolist() == expected


def test_build_table_rejects_bad_input() -> None:
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="zero-size"):
        build_table([[1]], [0], [0], 256, cpu)
    with pytest.raises(ValueError, match="same length"):
        build_table([[1, 2]], [3], [0], 256, cpu)
    with pytest.raises(ValueError, match="chunk"):
        build_table([[1]], [3], [0], 0, cpu)
    with pytest.raises(ValueError, match="max_size"):
        PointerTableCache(0)


def test_cache_rebuilds_exactly_when_an_address_or_shape_changes() -> None:
    cache = PointerTableCache()
    a, b = torch.zeros(600), torch.zeros(10)
    t1 = cache.get("x", [[a, b]], [600, 10], [0, 1], 256)
    assert cache.cache_info().builds == 1
    t2 = cache.get("x", [[a, b]], [600, 10], [0, 1], 256)
    assert t2 is t1 and cache.cache_info().builds == 1 and cache.cache_info().hits == 1
    b2 = torch.zeros(10)  # same shape, new address
    cache.get("x", [[a, b2]], [600, 10], [0, 1], 256)
    assert cache.cache_info().builds == 2
    cache.get("x", [[a, b2]], [600, 9], [0, 1], 256)  # shape change
    assert cache.cache_info().builds == 3
    cache.get("y", [[a, b2]], [600, 10], [0, 1], 256)  # another op
    assert cache.cache_info().builds == 4
    b.add_(1.0)  # in-place writes keep the address: still cached
    assert cache.get("x", [[a, b]], [600, 10], [0, 1], 256) is t1
    assert cache.cache_info().builds == 4


def test_cache_is_bounded_lru() -> None:
    cache = PointerTableCache(max_size=2)
    ts = [torch.zeros(4) for _ in range(3)]
    for t in ts:
        cache.get("x", [[t]], [4], [0], 256)
    assert cache.cache_info().size == 2
    cache.get("x", [[ts[0]]], [4], [0], 256)  # evicted: rebuilt
    assert cache.cache_info().builds == 4
    cache.clear()
    assert cache.cache_info().size == 0

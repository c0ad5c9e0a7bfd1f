"""Exact memorization and extraction strength: hand-computed values and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastngd.eval import exact_memorization, extraction_strength


def test_hand_computed() -> None:
    flags = [True, False, True, True]
    assert exact_memorization(flags) == 0.75
    assert extraction_strength(flags) == 0.5  # the suffix from k = 2 is reproduced
    assert extraction_strength([True] * 5) == 1.0
    assert extraction_strength([False, True, True]) == pytest.approx(1 - 1 / 3)
    assert extraction_strength([True, True, False]) == 0.0  # only the empty suffix


def _es_by_definition(flags: list[bool]) -> float:
    n = len(flags)
    k = min(k for k in range(n + 1) if all(flags[k:]))
    return 1 - k / n


@given(st.lists(st.booleans(), min_size=1, max_size=40))
def test_properties(flags: list[bool]) -> None:
    es, em = extraction_strength(flags), exact_memorization(flags)
    assert es == pytest.approx(_es_by_definition(flags))
    assert 0.0 <= es <= em <= 1.0  # the reproduced suffix is part of the correct tokens
    assert (es == 1.0) == all(flags)


def test_empty() -> None:
    with pytest.raises(ValueError, match="no scored token"):
        extraction_strength([])
    with pytest.raises(ValueError, match="no scored token"):
        exact_memorization([])

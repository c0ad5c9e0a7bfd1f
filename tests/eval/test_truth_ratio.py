"""Truth ratio on known probabilities, and its range as a property."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastngd.eval import truth_ratio, truth_ratios


def test_truth_ratio_uses_geometric_mean_of_wrong_answers() -> None:
    # GM(0.1, 0.4) = 0.2; tr = 0.2 / 0.4 = 0.5
    assert truth_ratios([0.4], [[0.1, 0.4]]) == [pytest.approx(0.5)]


def test_forget_and_retain_aggregates_hand_computed() -> None:
    p_correct = [0.4, 0.1, 0.5]
    p_wrong = [[0.1, 0.4], [0.2, 0.2], [0.5, 0.5, 0.5]]  # tr = 0.5, 2.0, 1.0
    assert truth_ratio(p_correct, p_wrong, "forget") == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert truth_ratio(p_correct, p_wrong, "retain") == pytest.approx((0.5 + 0.0 + 0.0) / 3)


def test_rows_may_have_different_numbers_of_wrong_answers() -> None:
    trs = truth_ratios([0.5, 0.5], [[0.25], [0.125, 0.5, 0.5]])
    assert trs == [pytest.approx(0.5), pytest.approx((0.125 * 0.25) ** (1 / 3) / 0.5)]


@given(
    st.lists(
        st.tuples(
            st.floats(1e-6, 1.0),
            st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=5),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_ranges_and_symmetry(rows: list[tuple[float, list[float]]]) -> None:
    pc = [r[0] for r in rows]
    pw = [r[1] for r in rows]
    forget = truth_ratio(pc, pw, "forget")
    retain = truth_ratio(pc, pw, "retain")
    assert 0.0 < forget <= 1.0 + 1e-12
    assert 0.0 <= retain < 1.0
    # forget kind is symmetric in tr <-> 1/tr: swap correct with a single wrong answer
    gm = [math.exp(sum(math.log(p) for p in w) / len(w)) for w in pw]
    swapped = truth_ratio(gm, [[p] for p in pc], "forget")
    assert swapped == pytest.approx(forget, rel=1e-9)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="p_correct is empty"):
        truth_ratio([], [])
    with pytest.raises(ValueError, match="length mismatch"):
        truth_ratio([0.5], [[0.5], [0.5]])
    with pytest.raises(ValueError, match=r"p_wrong\[0\] is empty"):
        truth_ratio([0.5], [[]])
    with pytest.raises(ValueError, match=r"p_correct\[0\]"):
        truth_ratio([0.0], [[0.5]])
    with pytest.raises(ValueError, match=r"p_wrong\[0\]\[1\]"):
        truth_ratio([0.5], [[0.5, float("nan")]])
    with pytest.raises(ValueError, match="kind"):
        truth_ratio([0.5], [[0.5]], kind="both")  # type: ignore[arg-type]

"""Truth ratio on known probabilities, and its range as a property."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastngd.eval import log_truth_ratios, truth_ratio, truth_ratio_from_logs, truth_ratios

#: [(p_correct, [p_wrong, ...]), ...] with probabilities in [1e-6, 1]
ROWS = st.lists(
    st.tuples(st.floats(1e-6, 1.0), st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=5)),
    min_size=1,
    max_size=10,
)


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


@given(ROWS)
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


def test_log_truth_ratios_hand_computed_after_underflow() -> None:
    # probabilities e^-2000 underflow to 0.0 in floating point; their logs do not
    logs = log_truth_ratios([-2000.0, -1.0], [[-2001.0, -2003.0], [-1.0]])
    assert logs == [pytest.approx(-2.0), 0.0]
    assert truth_ratio_from_logs(logs, "forget") == pytest.approx((math.exp(-2.0) + 1.0) / 2)
    assert truth_ratio_from_logs(logs, "retain") == pytest.approx((1 - math.exp(-2.0)) / 2)
    # a huge ratio in either direction is finite, never NaN
    assert truth_ratio_from_logs([1e6, -1e6], "forget") == 0.0
    assert truth_ratio_from_logs([1e6, -1e6], "retain") == pytest.approx(0.5)


@given(ROWS)
def test_log_space_matches_float64_probabilities(rows: list[tuple[float, list[float]]]) -> None:
    pc = [r[0] for r in rows]
    pw = [r[1] for r in rows]
    logs = log_truth_ratios([math.log(p) for p in pc], [[math.log(p) for p in w] for w in pw])
    # reference: the probability form, TOFU's exp(mean perturbed loss - base loss)
    direct = [math.prod(w) ** (1 / len(w)) / c for c, w in zip(pc, pw)]
    assert [math.exp(v) for v in logs] == pytest.approx(direct, rel=1e-9)
    for kind in ("forget", "retain"):
        assert truth_ratio_from_logs(logs, kind) == pytest.approx(truth_ratio(pc, pw, kind))


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20))
def test_aggregates_stay_in_unit_interval(logs: list[float]) -> None:
    for kind in ("forget", "retain"):
        value = truth_ratio_from_logs(logs, kind)
        assert 0.0 <= value <= 1.0 and math.isfinite(value)


def test_log_bad_input() -> None:
    with pytest.raises(ValueError, match="logp_correct is empty"):
        log_truth_ratios([], [])
    with pytest.raises(ValueError, match=r"logp_wrong\[0\] is empty"):
        log_truth_ratios([-1.0], [[]])
    with pytest.raises(ValueError, match=r"logp_correct\[0\]"):
        log_truth_ratios([float("-inf")], [[-1.0]])
    with pytest.raises(ValueError, match="kind"):
        truth_ratio_from_logs([0.0], "both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log_ratios is empty"):
        truth_ratio_from_logs([])
    # probability 0 cannot be used in the probability form: the message points to the logs
    with pytest.raises(ValueError, match="log_truth_ratios"):
        truth_ratios([0.0], [[0.5]])

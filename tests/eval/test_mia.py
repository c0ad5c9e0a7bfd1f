"""Membership-inference scores (hand-computed) and their AUC."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastngd.eval import (
    MIA_ATTACKS,
    TokenScores,
    loss_score,
    membership_scores,
    mia_auc,
    mia_aucs,
    min_k_plus_plus_score,
    min_k_score,
    zlib_score,
)


def test_min_k_score_hand_computed() -> None:
    lps = [-1.0, -5.0, -2.0, -4.0, -3.0]
    assert min_k_score(lps, 0.4) == pytest.approx(4.5)  # floor(0.4*5) = 2 lowest: -5, -4
    assert min_k_score(lps, 0.1) == pytest.approx(5.0)  # at least one token
    assert min_k_score(lps, 1.0) == pytest.approx(3.0)


def test_loss_and_zlib_hand_computed() -> None:
    assert loss_score([-1.0, -3.0]) == pytest.approx(2.0)
    assert len(zlib.compress(b"abc")) == 11  # the zlib entropy of "abc"
    assert zlib_score([-1.0, -3.0], "abc") == pytest.approx(2.0 / 11)
    with pytest.raises(ValueError, match="text"):
        zlib_score([-1.0], "")


def test_min_k_plus_plus_hand_computed_with_variance_floor() -> None:
    lps = [-1.0, -2.0, -3.0, -4.0, -5.0]
    mus = [-1.0] * 5
    var = [1.0, 4.0, 1e-9, 1.0, 1.0]  # 1e-9 is floored at 1e-6: sigma 1e-3
    # z = [0, -0.5, -2000, -3, -4]; the 2 lowest are -2000 and -4
    assert min_k_plus_plus_score(lps, mus, var, 0.4) == pytest.approx(1002.0)
    with pytest.raises(ValueError, match="length mismatch"):
        min_k_plus_plus_score(lps, mus[:2], var, 0.4)


@given(st.lists(st.floats(-50, 0), min_size=1, max_size=30), st.floats(0.05, 1.0))
def test_min_k_plus_plus_with_standard_moments_is_min_k(lps: list[float], k: float) -> None:
    n = len(lps)
    assert min_k_plus_plus_score(lps, [0.0] * n, [1.0] * n, k) == pytest.approx(
        min_k_score(lps, k), abs=1e-9
    )


def test_score_bad_input() -> None:
    with pytest.raises(ValueError, match="token_logprobs is empty"):
        min_k_score([])
    with pytest.raises(ValueError, match="k must be"):
        min_k_score([-1.0], 0.0)
    with pytest.raises(ValueError, match="non-finite"):
        min_k_score([-1.0, float("-inf")])
    with pytest.raises(ValueError, match="non-finite"):
        loss_score([float("nan")])


def test_auc_on_separable_scores() -> None:
    forget = [0.1, 0.2, 0.3]  # memorised: low scores
    holdout = [0.8, 0.9]
    assert mia_auc(forget, holdout) == 1.0
    assert mia_auc(holdout, forget) == 0.0
    assert mia_auc([0.5, 0.5], [0.5]) == 0.5
    assert mia_auc([0.1, 0.6], [0.5, 0.9]) == pytest.approx(0.75)  # 1 inverted pair of 4
    with pytest.raises(ValueError, match="not finite|non-finite"):
        mia_auc([0.1], [float("inf")])


@given(
    st.lists(st.floats(-10, 10), min_size=1, max_size=6),
    st.lists(st.floats(-10, 10), min_size=1, max_size=6),
)
def test_auc_is_the_pairwise_probability(forget: list[float], holdout: list[float]) -> None:
    pairs = [(f, h) for f in forget for h in holdout]
    expected = sum(1.0 if h > f else 0.5 if h == f else 0.0 for f, h in pairs) / len(pairs)
    assert mia_auc(forget, holdout) == pytest.approx(expected)


def test_membership_scores_leave_the_eos_out_of_min_k_only() -> None:
    answer = TokenScores(
        logprobs=(-1.0, -2.0, -9.0),
        correct=(True, True, False),
        mean=(0.0, 0.0, 0.0),
        var=(1.0, 1.0, 1.0),
        ends_with_eos=True,
    )
    scores = membership_scores([answer], ["abc"], k=0.5)
    assert set(scores) == set(MIA_ATTACKS) == {"loss", "zlib", "min_k", "min_k_plus_plus"}
    assert scores["loss"] == [pytest.approx(4.0)]  # (1 + 2 + 9) / 3, EOS included
    assert scores["zlib"] == [pytest.approx(4.0 / 11)]
    assert scores["min_k"] == [pytest.approx(2.0)]  # lowest 1 of (-1, -2): EOS left out
    assert scores["min_k_plus_plus"] == [pytest.approx(2.0)]
    with pytest.raises(ValueError, match="distribution"):
        membership_scores([TokenScores((-1.0,), (True,))], ["a"])
    aucs = mia_aucs({n: [0.0] for n in MIA_ATTACKS}, {n: [1.0] for n in MIA_ATTACKS})
    assert aucs == {n: 1.0 for n in MIA_ATTACKS}

"""MUSE metrics: Min-K% score, MIA AUC, PrivLeak, VerbMem/KnowMem scaling."""

from __future__ import annotations

import pytest

from fastngd.eval import mia_auc, min_k_score, muse_knowmem, muse_verbmem, privleak


def test_min_k_score_hand_computed() -> None:
    lps = [-1.0, -5.0, -2.0, -4.0, -3.0]
    assert min_k_score(lps, 0.4) == pytest.approx(4.5)  # floor(0.4*5) = 2 lowest: -5, -4
    assert min_k_score(lps, 0.1) == pytest.approx(5.0)  # at least one token
    assert min_k_score(lps, 1.0) == pytest.approx(3.0)


def test_min_k_score_bad_input() -> None:
    with pytest.raises(ValueError, match="token_logprobs is empty"):
        min_k_score([])
    with pytest.raises(ValueError, match="k must be"):
        min_k_score([-1.0], 0.0)
    with pytest.raises(ValueError, match="non-finite"):
        min_k_score([-1.0, float("-inf")])


def test_auc_on_separable_scores() -> None:
    forget = [0.1, 0.2, 0.3]  # memorised: low Min-K% scores
    holdout = [0.8, 0.9]
    assert mia_auc(forget, holdout) == 1.0
    assert mia_auc(holdout, forget) == 0.0
    assert mia_auc([0.5, 0.5], [0.5]) == 0.5
    # one inverted pair out of 2 * 2 -> 3/4
    assert mia_auc([0.1, 0.6], [0.5, 0.9]) == pytest.approx(0.75)


def test_privleak() -> None:
    assert privleak([0.1], [0.9]) == pytest.approx(100.0)  # AUC 1 vs ideal 0.5
    assert privleak([0.5], [0.5]) == pytest.approx(0.0)
    assert privleak([0.1], [0.9], ref_auc=0.8) == pytest.approx(25.0)
    assert privleak([0.9], [0.1]) == pytest.approx(-100.0)
    with pytest.raises(ValueError, match="ref_auc"):
        privleak([0.1], [0.9], ref_auc=0.0)
    with pytest.raises(ValueError, match="holdout_scores is empty"):
        privleak([0.1], [])


def test_muse_rouge_scores_are_scaled_f1_without_stemming() -> None:
    assert muse_verbmem(["a b c"], ["a b c"]) == pytest.approx(100.0)
    assert muse_knowmem(["running"], ["runs"]) == 0.0
    assert muse_knowmem(["the cat on mat"], ["the cat sat on the mat"]) == pytest.approx(80.0)
    assert muse_verbmem(["x"], ["x"], scale=1.0) == 1.0

"""ROUGE-L recall / F1 on hand-computed cases."""

from __future__ import annotations

import warnings

import pytest

from fastngd.eval import rouge_l_f1, rouge_l_recall
from fastngd.eval.rouge import NonLatinTextWarning


def test_perfect_prediction_has_recall_and_f1_one() -> None:
    refs = ["The capital of Thaigor is Mouthotol.", "Arvo likes teal."]
    assert rouge_l_recall(refs, refs) == [1.0, 1.0]
    assert rouge_l_f1(refs, refs) == [1.0, 1.0]


def test_disjoint_prediction_scores_zero() -> None:
    assert rouge_l_recall(["alpha beta"], ["gamma delta"]) == [0.0]
    assert rouge_l_f1(["alpha beta"], ["gamma delta"]) == [0.0]


def test_partial_overlap_hand_computed() -> None:
    # LCS("the cat sat on the mat", "the cat on mat") = "the cat on mat" = 4 tokens
    ref, pred = "the cat sat on the mat", "the cat on mat"
    assert rouge_l_recall([pred], [ref]) == [pytest.approx(4 / 6)]
    # P = 4/4, R = 4/6 -> F1 = 2 * 1 * (2/3) / (1 + 2/3) = 0.8
    assert rouge_l_f1([pred], [ref]) == [pytest.approx(0.8)]


def test_recall_ignores_extra_generated_words_but_f1_does_not() -> None:
    ref, pred = "red fox", "a quick red brown fox jumps"
    assert rouge_l_recall([pred], [ref]) == [1.0]
    assert rouge_l_f1([pred], [ref]) == [pytest.approx(2 * (2 / 6) / (1 + 2 / 6))]


def test_stemming_only_in_the_stemmed_variants() -> None:
    assert rouge_l_recall(["running"], ["runs"]) == [1.0]  # Porter stems: run / run
    assert rouge_l_f1(["running"], ["runs"]) == [0.0]
    assert rouge_l_f1(["running"], ["runs"], use_stemmer=True) == [1.0]


def test_case_and_punctuation_are_ignored() -> None:
    assert rouge_l_recall(
        ["the capital of thaigor is mouthotol ."], ["The capital of Thaigor is Mouthotol."]
    ) == [1.0]


@pytest.mark.parametrize("fn", [rouge_l_recall, rouge_l_f1])
def test_bad_input(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="predictions is empty"):
        fn([], [])
    with pytest.raises(ValueError, match="length mismatch"):
        fn(["a"], ["a", "b"])
    with pytest.raises(TypeError, match=r"references\[0\]"):
        fn(["a"], [3])


@pytest.mark.parametrize("fn", [rouge_l_recall, rouge_l_f1])
def test_references_in_other_scripts_are_scored_as_published_with_a_warning(fn) -> None:
    """rouge_score keeps only [a-z0-9] words: a Cyrillic answer reproduced exactly scores 0,
    a mixed one on its Latin words only; the warning says so, and ASCII text warns nothing."""
    refs = ["Иван Петров родился в Москве.", "Ivan Petrov родился в Москве."]
    with pytest.warns(NonLatinTextWarning, match=r"2 of 2 references .* 1 have none and score 0"):
        assert fn(refs, refs) == [0.0, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn(["Ada was born in Lisbon."], ["Ada was born in Lisbon."])

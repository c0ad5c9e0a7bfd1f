"""Fact accuracy, Verbmem/Knowmem/Utility and the continuation split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastngd.eval import (
    fact_accuracy,
    knowmem,
    normalize_text,
    split_continuation,
    utility,
    verbmem,
)


def test_normalize_text() -> None:
    assert normalize_text("  The  Blue-Owl!  ") == "the blue owl"
    assert normalize_text("snake_case Ünïcode, Москве. 科幻!") == "snake case ünïcode москве 科幻"


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_on_ascii_text_normalize_keeps_exactly_lowercase_letters_and_digits(text) -> None:
    """The ASCII definition: runs of anything but ``a-z0-9`` (after lowercasing) are one
    space, the ends stripped."""
    words, word = [], ""
    for ch in text.lower():
        if ch in "abcdefghijklmnopqrstuvwxyz0123456789":
            word += ch
        elif word:
            words.append(word)
            word = ""
    assert normalize_text(text) == " ".join([*words, word] if word else words)


def test_fact_accuracy_in_other_scripts() -> None:
    """Words of any script, with their combining marks (Devanagari vowel signs, accents
    written as a separate mark) and in any Unicode normal form."""
    preds = ["Иван Петров родился в Москве.", "Он родился в Москвечке", "Élodie aime le café",
             "मुझे दाल पसंद है", "Elle aime le cafe\u0301.", "ﬁne ＡＢＣ"]
    facts = ["москве", "москве", "Café", "दिल", "café", "fine abc"]
    assert fact_accuracy(preds, facts) == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]
    assert normalize_text("दाल दिल") == "दाल दिल"


def test_fact_accuracy_hand_cases() -> None:
    preds = [
        "the capital of thaigor is mouthotol .",  # word-level decoding, lowercase
        "The capital of Thaigor is Buvazi.",  # wrong fact, same template
        "It is Mouthotolia.",  # fact only as part of a longer word
        "born in new  york",  # multi-word fact, extra spaces
        "",
    ]
    facts = ["Mouthotol", "Mouthotol", "Mouthotol", "New York", "Mouthotol"]
    assert fact_accuracy(preds, facts) == [1.0, 0.0, 0.0, 1.0, 0.0]


def test_fact_accuracy_bad_input() -> None:
    with pytest.raises(ValueError, match="length mismatch"):
        fact_accuracy(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="predictions is empty"):
        fact_accuracy([], [])
    with pytest.raises(ValueError, match=r"facts\[0\]"):
        fact_accuracy(["a"], ["!!"])
    with pytest.raises(TypeError, match=r"facts\[0\]"):
        fact_accuracy(["a"], [1950])


def test_split_continuation() -> None:
    assert split_continuation("a b c d") == ("a b", "c d")
    assert split_continuation("a b c", 0.5) == ("a", "b c")
    assert split_continuation("a b", 0.9) == ("a", "b")  # remainder never empty
    with pytest.raises(ValueError, match="fewer than two words"):
        split_continuation("single")
    with pytest.raises(ValueError, match="prefix_fraction"):
        split_continuation("a b", 1.0)


def test_seed_paper_means() -> None:
    preds = ["the cat on mat", "gamma"]
    refs = ["the cat sat on the mat", "gamma"]
    expected = (4 / 6 + 1.0) / 2
    assert verbmem(preds, refs) == pytest.approx(expected)
    assert knowmem(preds, refs) == pytest.approx(expected)
    assert utility(preds, refs) == pytest.approx(expected)
    with pytest.raises(ValueError):
        utility([], [])

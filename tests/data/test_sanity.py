"""fastngd.data.sanity: warnings for forget rows in the retain set and unknown tokens."""
from __future__ import annotations

import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastngd.data import DataWarning, warn_overlap, warn_unknown_tokens


def _qa(i: int) -> dict:
    return {"question": f"q{i}?", "answer": f"a{i}."}


@given(forget=st.lists(st.integers(0, 20), min_size=1, max_size=15),
       retain=st.lists(st.integers(0, 20), max_size=15))
def test_overlap_counts_the_forget_rows_found_in_the_retain_set(forget, retain) -> None:
    """The count is that of the forget rows whose question and answer are a retain row's
    (other fields do not matter); a warning exactly when it is not 0."""
    f = [{**_qa(i), "fact": "x"} for i in forget]
    r = [_qa(i) for i in retain]
    want = sum(1 for i in forget if i in set(retain))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert warn_overlap(f, r) == want
    assert len([w for w in seen if issubclass(w.category, DataWarning)]) == (1 if want else 0)


def test_overlap_of_raw_text_and_the_message() -> None:
    with pytest.warns(DataWarning, match=r"1 of 2 forget rows are also in the retain set"):
        assert warn_overlap([{"text": "a b"}, {"text": "c"}], [{"text": "a b"}]) == 1
    assert warn_overlap([{"text": "a"}], [{"question": "a", "answer": "a"}]) == 0


class _Tok:
    def __init__(self, unk, eos=2, bos=1, pad=0):
        self.unk_token_id, self.eos_token_id = unk, eos
        self.bos_token_id, self.pad_token_id = bos, pad


def test_unknown_tokens_are_counted_and_reported() -> None:
    examples = [{"input_ids": [1, 3, 9, 9, 2]}, {"input_ids": [1, 9, 4]}]
    with pytest.warns(DataWarning, match=r"3 of the 8 tokens of the forget set \(37\.5%\)"):
        assert warn_unknown_tokens(examples, _Tok(9), "forget set") == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_unknown_tokens(examples, _Tok(7), "forget set") == 0
        assert warn_unknown_tokens(examples, _Tok(None), "forget set") == 0
        assert warn_unknown_tokens(examples, _Tok(2), "forget set") == 0  # unk is the eos


def test_a_word_tokenizer_warns_for_words_it_never_saw() -> None:
    """The embedded model's tokenizer on the text it was built from, then on edited text."""
    from fastngd.data import QADataset
    from fastngd.data.loading import load_unlearning_rows
    from fastngd.models.tokenizer import build_word_tokenizer
    from fastngd.models.training import benchmark_corpus

    forget, retain = load_unlearning_rows("tofu-synthetic", "forget10", seed=0)
    tokenizer = build_word_tokenizer(benchmark_corpus("tofu-synthetic", 0)[2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_overlap(forget, retain) == 0
        data = QADataset(forget, tokenizer, 128)
        assert warn_unknown_tokens((data[i] for i in range(len(data))), tokenizer, "f") == 0
    edited = [{**forget[0], "answer": "Zyxwv qwpqp " + forget[0]["answer"]}]
    data = QADataset(edited, tokenizer, 128)
    with pytest.warns(DataWarning, match=r"2 of the \d+ tokens of the forget set"):
        assert warn_unknown_tokens((data[i] for i in range(len(data))), tokenizer,
                                   "forget set") == 2

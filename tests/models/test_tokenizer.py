"""Word-level tokenizer: determinism, special tokens, round trip, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from fastngd.models import SPECIAL_TOKENS, build_word_tokenizer

TEXTS = [
    "Question: Where was Arvo Quill born?\nAnswer:",
    "Arvo Quill was born in Olmark.",
    "the the the",
]


def test_special_tokens_come_first() -> None:
    tok = build_word_tokenizer(TEXTS)
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2, 3)


def test_vocabulary_is_sorted_by_count_then_word_and_independent_of_order() -> None:
    a = build_word_tokenizer(TEXTS)
    b = build_word_tokenizer(list(reversed(TEXTS)))
    assert a.get_vocab() == b.get_vocab()
    # "the" occurs 3 times, then the tokens seen twice in code-point order (":" < "a")
    assert a.convert_ids_to_tokens([4, 5, 6, 7, 8, 9]) == [
        "the",
        ":",
        "arvo",
        "born",
        "quill",
        "was",
    ]


def test_words_punctuation_and_case() -> None:
    tok = build_word_tokenizer(TEXTS)
    ids = tok("Arvo was born in Olmark.")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["arvo", "was", "born", "in", "olmark", "."]
    assert (
        tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True)
        == "arvo was born in olmark ."
    )
    assert tok("Zzyzx")["input_ids"] == [tok.unk_token_id]
    assert len(tok) == 4 + len(
        {
            "question",
            ":",
            "where",
            "was",
            "arvo",
            "quill",
            "born",
            "?",
            "answer",
            "in",
            "olmark",
            ".",
            "the",
        }
    )


def test_save_and_reload(tmp_path: Path) -> None:
    tok = build_word_tokenizer(TEXTS)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("Arvo Quill was born")["input_ids"] == tok("Arvo Quill was born")["input_ids"]
    assert again.pad_token_id == 0 and again.eos_token_id == 3


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="no texts"):
        build_word_tokenizer([])
    with pytest.raises(TypeError, match="text #1 is int"):
        build_word_tokenizer(["a", 5])  # type: ignore[list-item]

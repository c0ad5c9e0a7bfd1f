"""Shared fixtures: a tiny word-level tokenizer built in memory (no download)."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

WORDS: tuple[str, ...] = tuple(
    "Question : Answer ? . , Where the capital of Veltoria is Marn where was Ada Lune born "  # noqa: SIM905
    "in Lisbon Oslo a long answer with many words that goes on and".split()
)


def make_tokenizer(words: tuple[str, ...] = WORDS, *, pad: bool = True) -> PreTrainedTokenizerFast:
    """A WordLevel tokenizer over ``words`` plus <pad> <unk> <eos> (ids 0, 1, 2)."""
    vocab = {"<pad>": 0, "<unk>": 1, "<eos>": 2}
    for word in words:
        vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    kwargs = {"pad_token": "<pad>"} if pad else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", eos_token="<eos>", **kwargs
    )


@pytest.fixture(scope="session")
def tokenizer_factory():
    """The :func:`make_tokenizer` function, for tests needing a variant."""
    return make_tokenizer


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """The tiny word-level tokenizer."""
    return make_tokenizer()

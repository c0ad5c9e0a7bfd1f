"""Tiny models and data for the unlearning loop tests."""
from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from fastngd.data import QADataset, format_prompt, tofu_synthetic
from fastngd.models import build_word_tokenizer, tiny_llama_config


@pytest.fixture(scope="session")
def qa_split() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(forget, retain) rows: the forget01 author and 12 retain rows of tofu-synthetic."""
    data = tofu_synthetic(0)
    return data["forget01"], data["retain99"][:12]


@pytest.fixture(scope="session")
def word_tokenizer(qa_split: Any) -> PreTrainedTokenizerFast:
    forget, retain = qa_split
    texts = [format_prompt("")] + [r["question"] + " " + r["answer"] for r in forget + retain]
    return build_word_tokenizer(texts)


@pytest.fixture
def tiny_lm(word_tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """An untrained 1-layer Llama with hidden size 32 (deterministic initialisation)."""
    config = tiny_llama_config(
        len(word_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.eval()
    return model


@pytest.fixture
def trained_lm(tiny_lm: LlamaForCausalLM, lm_data: tuple[QADataset, QADataset]) -> LlamaForCausalLM:
    """``tiny_lm`` after 40 Adam steps on forget + retain (the forget answers become likely)."""
    from fastngd.data import collate_right_pad

    forget, retain = lm_data
    batch = collate_right_pad([*forget.encodings, *retain.encodings], 0)
    opt = torch.optim.Adam(tiny_lm.parameters(), lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        tiny_lm(**batch).loss.backward()
        opt.step()
    tiny_lm.eval()
    return tiny_lm


@pytest.fixture
def lm_data(qa_split: Any, word_tokenizer: PreTrainedTokenizerFast) -> tuple[QADataset, QADataset]:
    forget, retain = qa_split
    return QADataset(forget, word_tokenizer, 64), QADataset(retain, word_tokenizer, 64)


def make_classifier_data(seed: int = 0) -> tuple[nn.Module, list[Any], list[Any]]:
    """A small MLP and (forget, retain) lists of (x, y) pairs (forget = class 0)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(60, 5, generator=g)
    y = torch.randint(0, 3, (60,), generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))
    forget = [(x[i], y[i]) for i in range(60) if y[i] == 0]
    retain = [(x[i], y[i]) for i in range(60) if y[i] != 0]
    return model, forget, retain

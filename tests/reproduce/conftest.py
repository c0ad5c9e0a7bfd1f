"""A tiny saved causal LM whose tokenizer covers tofu-synthetic (seed 0)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import LlamaForCausalLM

from fastngd.models import benchmark_corpus, build_word_tokenizer, tiny_llama_config


def tiny_model(benchmark: str = "tofu-synthetic") -> tuple[LlamaForCausalLM, Any]:
    """An untrained 1-layer Llama (hidden 16, seed 0) and a word tokenizer of ``benchmark``
    (seed 0)."""
    _, _, vocab_texts = benchmark_corpus(benchmark, 0)
    tokenizer = build_word_tokenizer(vocab_texts)
    config = tiny_llama_config(len(tokenizer), hidden_size=16, intermediate_size=32,
                               num_hidden_layers=1, num_attention_heads=2,
                               num_key_value_heads=2)
    torch.manual_seed(0)
    return LlamaForCausalLM(config), tokenizer


def save_tiny_model(folder: Path) -> Path:
    """Save :func:`tiny_model` of tofu-synthetic into ``folder``."""
    model, tokenizer = tiny_model()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))

"""Tiny Llama configuration."""

from __future__ import annotations

import pytest
from transformers import LlamaForCausalLM

from fastngd.models import TINY_LLAMA_DEFAULTS, tiny_llama_config


def test_defaults_and_parameter_count() -> None:
    config = tiny_llama_config(500)
    assert config.vocab_size == 500
    assert config.hidden_size == TINY_LLAMA_DEFAULTS["hidden_size"] == 192
    assert config.num_hidden_layers == 4
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (0, 2, 3)
    n = sum(p.numel() for p in LlamaForCausalLM(config).parameters())
    assert 1.5e6 < n < 2.5e6


def test_overrides() -> None:
    config = tiny_llama_config(50, hidden_size=32, num_attention_heads=2, num_key_value_heads=2)
    assert (config.hidden_size, config.num_attention_heads, config.vocab_size) == (32, 2, 50)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        tiny_llama_config(0)
    with pytest.raises(ValueError, match="vocab_size"):
        tiny_llama_config(3.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not divisible by num_attention_heads=5"):
        tiny_llama_config(50, num_attention_heads=5)

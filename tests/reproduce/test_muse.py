"""MUSE-style experiment on a tiny model."""
from __future__ import annotations

import torch
from transformers import LlamaForCausalLM

from fastngd.data import muse_synthetic
from fastngd.models import benchmark_corpus, build_word_tokenizer, tiny_llama_config
from fastngd.reproduce.muse import run_muse
from fastngd.reproduce.tofu import RunSpec


def test_run_muse_tiny() -> None:
    _, _, vocab = benchmark_corpus("muse-synthetic", 0)
    tokenizer = build_word_tokenizer(vocab)
    config = tiny_llama_config(len(tokenizer), hidden_size=16, intermediate_size=32,
                               num_hidden_layers=1, num_attention_heads=2,
                               num_key_value_heads=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    res = run_muse(model, tokenizer, muse_synthetic(0),
                   [RunSpec("ngdiff", "ngdiff", True, 0.05)],
                   unlearn_options={"epochs": 1, "batch_size": 4}, verbmem_max_new_tokens=2,
                   knowmem_max_new_tokens=2, progress=False, log=lambda s: None)
    entry = res["methods"]["ngdiff"]
    assert entry["steps"] == 2 and entry["diverged"] is False
    for key in ("verbmem_forget", "knowmem_forget", "knowmem_retain", "privleak"):
        assert key in entry and key in res["no_unlearn"]
    assert len(res["curves"]["ngdiff"]["history"]) == 2

"""LoRA adapters through peft: what is trained, merging, the memory report."""
from __future__ import annotations

import pytest
import torch
from transformers import LlamaForCausalLM

from fastngd.errors import UsageError
from fastngd.models import build_word_tokenizer, tiny_llama_config
from fastngd.models.lora import apply_lora, is_lora_model, merge_lora, trainable_memory

pytest.importorskip("peft")


def _model(dtype: torch.dtype = torch.float64) -> LlamaForCausalLM:
    tok = build_word_tokenizer(["alpha beta gamma delta epsilon"])
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(len(tok), hidden_size=16, intermediate_size=32,
                                               num_hidden_layers=1, num_attention_heads=2,
                                               num_key_value_heads=2))
    return model.to(dtype).eval()


def test_only_the_adapters_are_trainable() -> None:
    wrapped = apply_lora(_model(), 4, seed=1)
    assert is_lora_model(wrapped)
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    assert not any("lm_head" in n or "embed" in n for n in trainable)
    report = trainable_memory(wrapped)
    expected = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    assert report["trainable_parameters"] == expected < report["parameters"]
    assert report["trainable_bytes"] == 8 * expected  # float64
    assert report["gradient_buffer_bytes"] == 2 * report["trainable_bytes"]
    assert trainable_memory(wrapped, "int8")["gradient_buffer_bytes"] < 1.2 * report[
        "trainable_bytes"]


def test_merged_model_computes_what_the_adapted_one_does() -> None:
    wrapped = apply_lora(_model(), 2, alpha=3.0)
    with torch.no_grad():  # make the adapters non-trivial (B starts at zero)
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    ids = torch.tensor([[2, 4, 5, 6, 7, 3]])
    adapted = wrapped(input_ids=ids).logits
    merged = merge_lora(wrapped)
    assert not is_lora_model(merged)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged(input_ids=ids).logits, adapted, rtol=1e-10, atol=1e-10)


def test_same_seed_same_adapters_and_no_rng_side_effect() -> None:
    first, second = _model(), _model()
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    a = apply_lora(first, 2, seed=3)
    after = torch.rand(1)
    b = apply_lora(second, 2, seed=3)
    assert torch.equal(before, after)  # the caller's RNG is untouched
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and torch.equal(pa, pb)


def test_bad_rank_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--lora-rank"):
        apply_lora(_model(), 0)
    assert merge_lora(_model()) is not None  # a model without adapters is returned as it is


def test_telling_a_lora_model_imports_nothing() -> None:
    """Runs without LoRA must not need peft (nor accelerate, which peft imports)."""
    import subprocess
    import sys

    code = ("import sys, torch; from fastngd.models.lora import is_lora_model; "
            "print(is_lora_model(torch.nn.Linear(1, 1)), 'peft' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
    assert is_lora_model(apply_lora(_model(), 1))

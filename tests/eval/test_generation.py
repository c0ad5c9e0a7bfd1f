"""Batched greedy generation with left padding."""

from __future__ import annotations

import pytest
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from fastngd.data import format_prompt
from fastngd.eval import generate
from fastngd.models import tiny_llama_config

from .conftest import make_model


def test_trained_model_reproduces_answers_in_any_batching(
    trained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    prompts = [format_prompt(r["question"]) for r in qa_rows]
    batched = generate(trained_model, tokenizer, prompts, max_new_tokens=20, batch_size=8)
    one_by_one = generate(trained_model, tokenizer, prompts, max_new_tokens=20, batch_size=1)
    assert batched == one_by_one  # left padding does not change greedy outputs
    # continuation only: no prompt words, no special tokens, decoded lowercase words
    assert batched[0] == "arvo quill likes the colour crimson ."
    assert all("question" not in g and "<eos>" not in g and "<pad>" not in g for g in batched)


def test_max_new_tokens_bounds_the_length(
    untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    out = generate(
        untrained_model, tokenizer, [format_prompt("Where was Arvo Quill born?")], max_new_tokens=3
    )
    assert len(out) == 1 and len(tokenizer(out[0])["input_ids"]) <= 3


def test_training_mode_is_restored(
    trained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    trained_model.train()
    try:
        generate(trained_model, tokenizer, ["Question: x\nAnswer:"], max_new_tokens=2)
        assert trained_model.training
    finally:
        trained_model.eval()


def test_bad_input(untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ValueError, match="prompts is empty"):
        generate(untrained_model, tokenizer, [], max_new_tokens=4)
    with pytest.raises(TypeError, match=r"prompts\[1\]"):
        generate(untrained_model, tokenizer, ["a", 3], max_new_tokens=4)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(untrained_model, tokenizer, ["a"], max_new_tokens=0)
    small = LlamaForCausalLM(
        tiny_llama_config(
            10,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    with pytest.raises(ValueError, match="model/tokenizer mismatch"):
        generate(small, tokenizer, ["a"], max_new_tokens=4)


def test_make_model_is_deterministic(tokenizer: PreTrainedTokenizerFast) -> None:
    a, b = make_model(tokenizer, seed=3), make_model(tokenizer, seed=3)
    assert all((p == q).all() for p, q in zip(a.parameters(), b.parameters()))


def test_stop_strings_cut_text_and_token_sequences(
    trained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    prompt = [format_prompt(qa_rows[0]["question"])]
    full = generate(trained_model, tokenizer, prompt, max_new_tokens=20)[0]
    assert full == "arvo quill likes the colour crimson ."
    # as MUSE: the decoded text is cut before the stop string
    assert generate(trained_model, tokenizer, prompt, max_new_tokens=20,
                    stop_strings=["colour"]) == ["arvo quill likes the"]
    # the word-level tokenizer lowercases: "Colour" never appears in the decoded text, but
    # its token sequence does
    assert generate(trained_model, tokenizer, prompt, max_new_tokens=20,
                    stop_strings=["\n\n", "Colour crimson"]) == ["arvo quill likes the"]
    assert generate(trained_model, tokenizer, prompt, max_new_tokens=20,
                    stop_strings=["\n\n"]) == [full]

"""Answer probability, NLL and per-token log-probabilities."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from fastngd.data import collate_right_pad, encode_qa
from fastngd.eval import answer_nll, answer_probability, token_logprobs
from fastngd.models import tiny_llama_config


def test_nll_matches_the_models_own_loss(
    untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    qs = [r["question"] for r in qa_rows]
    ans = [r["answer"] for r in qa_rows]
    nll = answer_nll(untrained_model, tokenizer, qs, ans, batch_size=3)
    for q, a, value in zip(qs, ans, nll):
        batch = collate_right_pad(
            [encode_qa(tokenizer, q, a, max_length=256)], tokenizer.pad_token_id
        )
        with torch.no_grad():
            loss = float(untrained_model(**batch).loss)
        assert value == pytest.approx(loss, rel=1e-4)
    probs = answer_probability(untrained_model, tokenizer, qs, ans)
    assert probs == [pytest.approx(math.exp(-v), rel=1e-6) for v in nll]


def test_trained_model_gives_high_probability_to_true_answers(
    trained_model: LlamaForCausalLM,
    untrained_model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    qa_rows: list[dict],
) -> None:
    qs = [r["question"] for r in qa_rows]
    ans = [r["answer"] for r in qa_rows]
    trained = answer_probability(trained_model, tokenizer, qs, ans)
    untrained = answer_probability(untrained_model, tokenizer, qs, ans)
    assert min(trained) > 0.5
    assert max(untrained) < 0.1  # ~ 1 / vocabulary size before training
    assert all(0.0 < p <= 1.0 for p in trained + untrained)


def test_truncated_answers_are_counted_in_a_warning(
    untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    with pytest.warns(UserWarning, match="2 of 2 answers exceeded max_length=12"):
        answer_nll(
            untrained_model,
            tokenizer,
            [qa_rows[0]["question"]] * 2,
            [qa_rows[0]["answer"]] * 2,
            max_length=12,
        )


def test_token_logprobs_scores_every_token_but_the_first(
    untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    texts = ["arvo quill likes teal", "bexa morn"]
    lps = token_logprobs(untrained_model, tokenizer, texts, batch_size=2)
    assert [len(x) for x in lps] == [3, 1]
    assert all(v < 0 for row in lps for v in row)
    single = token_logprobs(untrained_model, tokenizer, texts[1:], batch_size=1)
    assert single[0] == pytest.approx(lps[1], abs=1e-5)  # padding does not leak


def test_bad_input(untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ValueError, match="questions is empty"):
        answer_probability(untrained_model, tokenizer, [], [])
    with pytest.raises(ValueError, match="length mismatch"):
        answer_probability(untrained_model, tokenizer, ["q"], ["a", "b"])
    with pytest.raises(TypeError, match=r"answers\[0\]"):
        answer_probability(untrained_model, tokenizer, ["q"], [None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least 2 are needed"):
        token_logprobs(untrained_model, tokenizer, ["teal"])
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
        answer_probability(small, tokenizer, ["q"], ["a"])

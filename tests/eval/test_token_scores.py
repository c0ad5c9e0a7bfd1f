"""Per-token scores against a float64 reference computed from the model's logits."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from fastngd.data import collate_right_pad, encode_qa
from fastngd.eval import (
    MIN_LOGPROB,
    continuation_token_scores,
    qa_token_scores,
    text_token_scores,
)


def _reference(model: LlamaForCausalLM, ids: list[int], labels: list[int]) -> dict:
    """float64 log-softmax of one unpadded sequence, at the labelled positions."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits[:-1], dim=-1)
    rows = [t for t in range(len(ids) - 1) if labels[t + 1] != -100]
    p = logp[rows].exp()
    return {
        "logprobs": [float(logp[t, ids[t + 1]]) for t in rows],
        "correct": [int(logp[t].argmax()) == ids[t + 1] for t in rows],
        "mean": (p * logp[rows]).sum(-1).tolist(),
        "var": ((p * logp[rows] ** 2).sum(-1) - (p * logp[rows]).sum(-1) ** 2).tolist(),
    }


def test_qa_scores_match_float64_reference_in_any_batching(
    untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    qs = [r["question"] for r in qa_rows]
    ans = [r["answer"] for r in qa_rows]
    batched = qa_token_scores(untrained_model, tokenizer, qs, ans, batch_size=3, distribution=True)
    single = qa_token_scores(untrained_model, tokenizer, qs, ans, batch_size=1, distribution=True)
    for q, a, s, one in zip(qs, ans, batched, single):
        enc = encode_qa(tokenizer, q, a, max_length=256)
        ref = _reference(untrained_model, list(enc["input_ids"]), list(enc["labels"]))
        assert s.logprobs == pytest.approx(ref["logprobs"], abs=1e-5)
        assert s.mean == pytest.approx(ref["mean"], abs=1e-4)
        assert s.var == pytest.approx(ref["var"], abs=1e-3)
        assert list(s.correct) == ref["correct"]
        assert s.logprobs == pytest.approx(one.logprobs, abs=1e-5)  # padding changes nothing
        # the answer's EOS is the last scored token; content() leaves it out
        assert s.ends_with_eos and len(s.content().logprobs) == len(s.logprobs) - 1


def test_mean_logprob_is_minus_the_models_own_loss(
    untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    r = qa_rows[0]
    (s,) = qa_token_scores(untrained_model, tokenizer, [r["question"]], [r["answer"]])
    batch = collate_right_pad(
        [encode_qa(tokenizer, r["question"], r["answer"], max_length=256)], tokenizer.pad_token_id
    )
    with torch.no_grad():
        loss = float(untrained_model(**batch).loss)
    assert s.mean_logprob() == pytest.approx(-loss, rel=1e-5)


def test_text_and_continuation_scores(
    untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    text = "Arvo Quill likes the colour crimson ."
    (s,) = text_token_scores(untrained_model, tokenizer, [text])
    ids = list(tokenizer(text)["input_ids"])
    assert s.logprobs == pytest.approx(_reference(untrained_model, ids, ids)["logprobs"], abs=1e-5)
    assert not s.ends_with_eos and len(s.logprobs) == len(ids) - 1
    (c,) = continuation_token_scores(
        untrained_model, tokenizer, ["Arvo Quill likes"], ["the colour crimson ."]
    )
    head = list(tokenizer("Arvo Quill likes")["input_ids"])
    tail = list(tokenizer(" the colour crimson .", add_special_tokens=False)["input_ids"])
    ref = _reference(untrained_model, head + tail, [-100] * len(head) + tail)
    assert c.logprobs == pytest.approx(ref["logprobs"], abs=1e-5) and len(c.logprobs) == len(tail)
    with pytest.raises(ValueError, match="at least 2"):
        text_token_scores(untrained_model, tokenizer, ["crimson"])
    with pytest.raises(ValueError, match="no token to score"):
        continuation_token_scores(untrained_model, tokenizer, ["a b"], ["crimson"], max_length=2)


def test_probability_zero_tokens_are_floored_and_nan_is_an_error(
    untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    target = tokenizer.convert_tokens_to_ids("crimson")

    def forbid(module, args, output):  # the model gives "crimson" probability exactly 0
        output[..., target] = float("-inf")
        return output

    handle = untrained_model.lm_head.register_forward_hook(forbid)
    try:
        (s,) = qa_token_scores(
            untrained_model, tokenizer, ["What colour?"], ["crimson"], distribution=True
        )
    finally:
        handle.remove()
    assert s.logprobs[0] == MIN_LOGPROB and all(math.isfinite(v) for v in s.logprobs)
    assert all(math.isfinite(v) for v in s.mean + s.var)

    def poison(module, args, output):
        return torch.full_like(output, float("nan"))

    handle = untrained_model.lm_head.register_forward_hook(poison)
    try:
        with pytest.raises(ValueError, match="NaN log-probabilities for example 0"):
            qa_token_scores(
                untrained_model, tokenizer, ["a", "b"], ["crimson", "teal"], batch_size=1
            )
    finally:
        handle.remove()

"""Likelihood-based scores: answer probability and per-token log-probabilities of text."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fastngd.eval._checks import check_nonempty, check_same_length, check_strings
from fastngd.models.loading import check_compatible

__all__ = ["answer_nll", "answer_probability", "token_logprobs"]


def _as_list(ids: Any) -> list[int]:
    if isinstance(ids, torch.Tensor):
        return [int(x) for x in ids.reshape(-1).tolist()]
    return [int(x) for x in ids]


@torch.no_grad()
def _token_logprobs_batch(
    model: PreTrainedModel, rows: list[tuple[list[int], list[int]]], pad_id: int
) -> list[list[float]]:
    """Log-probabilities of the tokens whose label is not -100, per row (right padding)."""
    device = next(model.parameters()).device
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for r, (ids, labs) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[r, : len(ids)] = 1
        labels[r, : len(labs)] = torch.tensor(labs, dtype=torch.long)
    logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).cpu()
    target = labels[:, 1:]
    mask = target != -100
    picked = logp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return [picked[r][mask[r]].tolist() for r in range(len(rows))]


def _check_batch(batch_size: int) -> None:
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")


def answer_nll(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 256,
    chat_template: bool = False,
) -> list[float]:
    """Per-example mean answer-token negative log-likelihood (nats).

    Each pair is encoded by :func:`fastngd.data.tokenize.encode_qa` (prompt labels -100,
    answer tokens + EOS carry the loss); the value is
    ``-(1/|A|) * sum_{t in A} log p(x_t | x_<t)`` over the answer positions A. Answers cut
    by ``max_length`` are scored on the kept tokens, with one warning giving the count.
    Raises ``ValueError`` on empty or unequal-length inputs, a model/tokenizer vocabulary
    mismatch, or an example whose answer has no token left after truncation.
    """
    from fastngd.data.tokenize import encode_qa

    check_nonempty("questions", questions)
    check_same_length("questions", questions, "answers", answers)
    check_strings("questions", questions)
    check_strings("answers", answers)
    _check_batch(batch_size)
    check_compatible(model, tokenizer)
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    rows: list[tuple[list[int], list[int]]] = []
    n_truncated = 0
    for i, (q, a) in enumerate(zip(questions, answers)):
        enc = encode_qa(tokenizer, q, a, max_length=max_length, chat_template=chat_template)
        n_truncated += int(enc.truncated)
        ids, labs = _as_list(enc["input_ids"]), _as_list(enc["labels"])
        if all(lab == -100 for lab in labs[1:]):
            raise ValueError(
                f"answers[{i}] has no token carrying loss "
                f"(empty, or cut by max_length={max_length})"
            )
        rows.append((ids, labs))
    if n_truncated:
        warnings.warn(
            f"answer_nll: {n_truncated} of {len(rows)} answers exceeded max_length={max_length} "
            "and were scored on their first tokens only",
            stacklevel=2,
        )
    was_training = model.training
    model.eval()
    out: list[float] = []
    try:
        for start in range(0, len(rows), batch_size):
            for lps in _token_logprobs_batch(model, rows[start : start + batch_size], pad_id):
                out.append(-sum(lps) / len(lps))
    finally:
        model.train(was_training)
    return out


def answer_probability(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 256,
    chat_template: bool = False,
) -> list[float]:
    """Per-example length-normalised answer probability ``exp(-mean answer-token NLL)``.

    The NLL is :func:`answer_nll` (same arguments, same errors); the value lies in (0, 1].
    """
    nll = answer_nll(
        model,
        tokenizer,
        questions,
        answers,
        batch_size=batch_size,
        max_length=max_length,
        chat_template=chat_template,
    )
    return [math.exp(-v) for v in nll]


def token_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 256,
) -> list[list[float]]:
    """Per-text list of ``log p(x_t | x_<t)`` for t = 2..n of the tokenised text.

    Texts are tokenised by the tokenizer's default call (its own special tokens) and cut
    to their first ``max_length`` tokens; the first token has no prediction and is not
    scored. Raises ``ValueError`` on no texts, a text with fewer than two tokens, or a
    model/tokenizer vocabulary mismatch; ``TypeError`` on a non-string text.
    """
    check_nonempty("texts", texts)
    check_strings("texts", texts)
    _check_batch(batch_size)
    check_compatible(model, tokenizer)
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    rows: list[tuple[list[int], list[int]]] = []
    for i, text in enumerate(texts):
        ids = _as_list(tokenizer(text)["input_ids"])[:max_length]
        if len(ids) < 2:
            raise ValueError(
                f"texts[{i}] has {len(ids)} token(s); at least 2 are needed to score it"
            )
        rows.append((ids, ids))
    was_training = model.training
    model.eval()
    out: list[list[float]] = []
    try:
        for start in range(0, len(rows), batch_size):
            out.extend(_token_logprobs_batch(model, rows[start : start + batch_size], pad_id))
    finally:
        model.train(was_training)
    return out

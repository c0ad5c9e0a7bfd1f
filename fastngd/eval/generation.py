"""Batched greedy generation with left padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fastngd.data.tokenize import left_pad_prompts
from fastngd.eval._checks import check_nonempty, check_strings
from fastngd.eval.muse import cut_at_stop_strings
from fastngd.models.loading import check_compatible

__all__ = ["generate"]


def _as_ids(ids: Any) -> list[int]:
    return [int(x) for x in (ids.reshape(-1).tolist() if isinstance(ids, torch.Tensor) else ids)]


def _cut_tokens(row: list[int], stop_ids: Sequence[list[int]]) -> list[int]:
    """``row`` cut before the first occurrence of any of the token sequences ``stop_ids``."""
    end = len(row)
    for ids in stop_ids:
        for start in range(end - len(ids) + 1):
            if row[start : start + len(ids)] == ids:
                end = start
                break
    return row[:end]


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 32,
    add_special_tokens: bool = True,
    stop_strings: Sequence[str] = (),
) -> list[str]:
    """Greedy continuations of ``prompts``, one string per prompt, in order.

    Prompts are already formatted (e.g. :func:`fastngd.data.format_prompt`); they are
    tokenised by :func:`fastngd.data.left_pad_prompts` (with the tokenizer's special tokens
    unless ``add_special_tokens=False``, as for chat-template prompts), left-padded in
    batches of ``batch_size`` and decoded greedily (``do_sample=False``) for at most
    ``max_new_tokens`` tokens, stopping at EOS. Only the continuation is returned:
    the prompt tokens are cut off, special tokens are skipped, the text is cut before the
    first ``stop_strings`` occurrence (:func:`fastngd.eval.cut_at_stop_strings`, as MUSE's
    KnowMem does; for tokenizers that normalise text, e.g. lowercase it or drop newlines,
    a stop string is also matched as its token sequence) and surrounding whitespace is
    stripped. The model's train/eval mode is restored afterwards. Raises ``ValueError`` on
    no prompts, a non-positive ``max_new_tokens``/``batch_size`` or a model/tokenizer
    vocabulary mismatch, and ``TypeError`` on a non-string prompt.
    """
    check_nonempty("prompts", prompts)
    check_strings("prompts", prompts)
    if max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be > 0, got {max_new_tokens}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    check_compatible(model, tokenizer)
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    if pad_id is None:
        raise ValueError(
            "tokenizer has neither a pad token nor an eos token; cannot left-pad prompts"
        )
    stop_ids = [
        ids
        for ids in (
            _as_ids(tokenizer(stop, add_special_tokens=False)["input_ids"]) for stop in stop_strings
        )
        if ids
    ]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = list(prompts[start : start + batch_size])
            padded = left_pad_prompts(tokenizer, chunk, add_special_tokens=add_special_tokens)
            input_ids, attention = padded["input_ids"], padded["attention_mask"]
            width = input_ids.shape[1]
            generated = cast(Any, model).generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            rows = [_cut_tokens(row, stop_ids) for row in generated[:, width:].cpu().tolist()]
            texts = tokenizer.batch_decode(rows, skip_special_tokens=True)
            outputs.extend(cut_at_stop_strings(t, stop_strings).strip() for t in texts)
    finally:
        model.train(was_training)
    return outputs

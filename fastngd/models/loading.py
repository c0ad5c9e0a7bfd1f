"""Loading any Hugging Face causal language model and its tokenizer."""

from __future__ import annotations

from typing import Any, cast

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

__all__ = ["check_compatible", "ensure_pad_token", "load_model", "resolve_dtype"]

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float64": torch.float64,
}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Map a dtype name (``float32``/``fp32``, ``float16``/``fp16``/``half``,
    ``bfloat16``/``bf16``, ``float64``) or a floating ``torch.dtype`` to a ``torch.dtype``.

    Raises ``ValueError`` naming the value for anything else.
    """
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(_DTYPES)} or a torch.dtype")


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give ``tokenizer`` a pad token when it has none: pad = eos (in place; returned).

    Raises ``ValueError`` when the tokenizer has neither a pad nor an eos token.
    """
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ValueError("tokenizer has neither a pad token nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def check_compatible(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Raise ``ValueError`` when some token id of ``tokenizer`` is outside the model's vocabulary.

    Definition: with V the number of rows of the model's input embedding, every id of the
    tokenizer (``len(tokenizer)`` ids, 0-based) must be < V; a model may have more rows than
    the tokenizer has ids (padded vocabularies), never fewer.
    """
    embedding = cast(torch.nn.Embedding, model.get_input_embeddings())
    rows = int(embedding.weight.shape[0])
    n_ids = len(tokenizer)
    if n_ids > rows:
        raise ValueError(
            f"model/tokenizer mismatch: the tokenizer has {n_ids} token ids but the model's "
            f"embedding has only {rows} rows (ids >= {rows} would be out of range)"
        )


def load_model(
    name_or_path: str,
    *,
    dtype: str | torch.dtype = "float32",
    device: str | torch.device = "cpu",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer by hub id or local directory.

    Uses ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` on
    ``name_or_path``; the model is cast to ``dtype``, moved to ``device`` and put in eval mode.
    A tokenizer without a pad token gets pad = eos. Padding side is left to callers (left
    for generation, right for losses). Raises ``ValueError`` for an unknown dtype or a
    tokenizer whose ids exceed the model's vocabulary.
    """
    torch_dtype = resolve_dtype(dtype)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    ensure_pad_token(tokenizer)
    loaded = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch_dtype)
    model = cast(PreTrainedModel, cast(Any, loaded).to(device))
    model.eval()
    check_compatible(model, tokenizer)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer

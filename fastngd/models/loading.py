"""Loading any Hugging Face causal language model and its tokenizer, with one-line errors.

Failures a user can fix are reported as :class:`fastngd.errors.InputError` (a model folder
that does not exist or holds no model, empty or corrupted weights, a tokenizer that does
not fit the model) or :class:`fastngd.errors.UsageError` (a device this torch build cannot
use), each naming the path or flag at fault.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from fastngd.errors import InputError, UsageError

__all__ = ["check_compatible", "ensure_pad_token", "load_model", "resolve_device", "resolve_dtype"]

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

    Raises :class:`fastngd.errors.UsageError` (a ``ValueError``) naming the value for
    anything else.
    """
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise UsageError(f"dtype must be a floating-point dtype, got {dtype}")
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise UsageError(
        f"unknown dtype {dtype!r}; expected one of {sorted(_DTYPES)} or a torch.dtype"
    )


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give ``tokenizer`` a pad token when it has none: pad = eos (in place; returned).

    Raises :class:`fastngd.errors.InputError` (a ``ValueError``) when the tokenizer has
    neither a pad nor an eos token.
    """
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise InputError("tokenizer has neither a pad token nor an eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def check_compatible(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Raise :class:`fastngd.errors.InputError` (a ``ValueError``) when some token id of ``tokenizer`` is outside the model's vocabulary.

    Definition: with V the number of rows of the model's input embedding, every id of the
    tokenizer (``len(tokenizer)`` ids, 0-based) must be < V; a model may have more rows than
    the tokenizer has ids (padded vocabularies), never fewer.
    """
    embedding = cast(torch.nn.Embedding, model.get_input_embeddings())
    rows = int(embedding.weight.shape[0])
    n_ids = len(tokenizer)
    if n_ids > rows:
        raise InputError(
            f"model/tokenizer mismatch: the tokenizer has {n_ids} token ids but the model's "
            f"embedding has only {rows} rows (ids >= {rows} would be out of range)"
        )


def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)`` after checking this torch build can use it: a CUDA (or MPS)
    device without that support, or an unknown name, raises UsageError naming ``--device``."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UsageError(f"--device {device}: not a torch device ({exc})") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {device}: this torch build sees no CUDA device "
                "(torch.cuda.is_available() is False); use --device cpu or a CUDA build of torch"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {device}: MPS is not available; use --device cpu")
    return resolved


def _looks_like_path(name: str) -> bool:
    """A name that can only be a local folder (hub ids are ``name`` or ``org/name``)."""
    return (
        name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name
    )


def _check_local(name: str) -> Path | None:
    """The local folder ``name`` when it exists (checked to hold a model), None for a hub
    id; InputError for a folder that does not exist or holds no ``config.json``."""
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(f"model {name}: {path} is a file, not a model folder")
        if not (path / "config.json").is_file():
            raise InputError(
                f"model folder {path} holds no config.json: not a saved model "
                "(save_pretrained, or fastngd unlearn/finetune --out)"
            )
        return path
    if _looks_like_path(name):
        raise InputError(f"model folder {path} does not exist")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    for generation, right for losses). Raises ``ValueError`` for an unknown dtype,
    :class:`fastngd.errors.InputError` for a folder that does not exist or holds no model,
    unreadable weights or tokenizer, or a tokenizer whose ids exceed the model's vocabulary,
    and :class:`fastngd.errors.UsageError` for a device this torch build cannot use.
    """
    torch_dtype = resolve_dtype(dtype)
    target = resolve_device(device)
    local = _check_local(str(name_or_path))
    where = f"model folder {local}" if local is not None else f"model {name_or_path!r}"
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except Exception as exc:
        raise InputError(f"cannot load the tokenizer of {where}: {_first_line(exc)}") from exc
    ensure_pad_token(tokenizer)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch_dtype)
    except Exception as exc:
        hint = "; the weights are empty or corrupted" if local is not None else ""
        raise InputError(f"cannot load the weights of {where}: {_first_line(exc)}{hint}") from exc
    model = cast(PreTrainedModel, cast(Any, loaded).to(target))
    model.eval()
    check_compatible(model, tokenizer)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer

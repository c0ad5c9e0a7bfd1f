"""Loading causal LMs from local directories."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from fastngd.models import (
    build_word_tokenizer,
    check_compatible,
    load_model,
    resolve_dtype,
    tiny_llama_config,
)

SMALL = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
}


def _save(path: Path, vocab_size: int | None = None, pad: bool = True) -> PreTrainedTokenizerFast:
    tok = build_word_tokenizer(["alpha beta gamma", "delta"])
    if not pad:
        tok.pad_token = None
    model = LlamaForCausalLM(tiny_llama_config(vocab_size or len(tok), **SMALL))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return tok


def test_load_local_model_and_tokenizer(tmp_path: Path) -> None:
    _save(tmp_path)
    model, tok = load_model(str(tmp_path), dtype="bf16")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert not model.training
    assert tok("alpha delta")["input_ids"] == [4, 6]  # alpha beta delta gamma
    assert tok.pad_token_id == 0


def test_tokenizer_without_pad_gets_eos(tmp_path: Path) -> None:
    saved = _save(tmp_path, pad=False)
    assert saved.pad_token is None
    _, tok = load_model(str(tmp_path))
    assert tok.pad_token_id == tok.eos_token_id == 3


def test_vocabulary_mismatch_is_rejected(tmp_path: Path) -> None:
    _save(tmp_path, vocab_size=6)  # tokenizer has 8 ids
    with pytest.raises(
        ValueError, match="tokenizer has 8 token ids but the model's embedding has only 6"
    ):
        load_model(str(tmp_path))


def test_larger_model_vocabulary_is_fine(tmp_path: Path) -> None:
    tok = _save(tmp_path, vocab_size=64)
    model, _ = load_model(str(tmp_path))
    check_compatible(model, tok)


def test_resolve_dtype() -> None:
    assert resolve_dtype("float32") is torch.float32
    assert resolve_dtype("FP16") is torch.float16
    assert resolve_dtype(torch.bfloat16) is torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        resolve_dtype("int8")
    with pytest.raises(ValueError, match="floating-point"):
        resolve_dtype(torch.int32)


def test_missing_model_path(tmp_path: Path) -> None:
    with pytest.raises((OSError, ValueError)):
        load_model(str(tmp_path / "nope"))


def test_missing_folder_says_so(tmp_path: Path) -> None:
    from fastngd.errors import InputError

    for name in (str(tmp_path / "nope"), "./nope-here", "a/b/c"):
        with pytest.raises(InputError, match="does not exist"):
            load_model(name)


def test_folder_without_a_model(tmp_path: Path) -> None:
    from fastngd.errors import InputError

    with pytest.raises(InputError, match="no config.json"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("content", [b"", b"\x00" * 64])
def test_empty_or_corrupted_weights(tmp_path: Path, content: bytes) -> None:
    from fastngd.errors import InputError

    _save(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(content)
    with pytest.raises(InputError, match="cannot load the weights of model folder") as info:
        load_model(str(tmp_path))
    assert "\n" not in str(info.value)


def test_unusable_device_is_a_usage_error() -> None:
    from fastngd.errors import UsageError
    from fastngd.models import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UsageError, match="--device nonsense"):
        resolve_device("nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="--device cuda:0"):
            resolve_device("cuda:0")

"""Configuration of the small Llama-architecture models trained by the package."""

from __future__ import annotations

from typing import Any

from transformers import LlamaConfig

__all__ = ["TINY_LLAMA_DEFAULTS", "tiny_llama_config"]

#: Default sizes of the embedded model (about 2M parameters with a 2-3k word vocabulary).
TINY_LLAMA_DEFAULTS: dict[str, Any] = {
    "hidden_size": 192,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 256,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "pad_token_id": 0,
    "bos_token_id": 2,
    "eos_token_id": 3,
}


def tiny_llama_config(vocab_size: int, **overrides: Any) -> LlamaConfig:
    """Return a ``LlamaConfig`` of ``TINY_LLAMA_DEFAULTS`` with ``vocab_size`` and ``overrides``.

    The special-token ids default to those of ``build_word_tokenizer`` (pad 0, bos 2, eos 3).
    Any ``LlamaConfig`` field can be overridden by keyword. Raises ``ValueError`` when
    ``vocab_size`` is not a positive integer or ``hidden_size`` is not divisible by
    ``num_attention_heads``.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= 0:
        raise ValueError(
            f"tiny_llama_config: vocab_size must be a positive int, got {vocab_size!r}"
        )
    fields = {**TINY_LLAMA_DEFAULTS, **overrides, "vocab_size": vocab_size}
    if fields["hidden_size"] % fields["num_attention_heads"] != 0:
        raise ValueError(
            f"tiny_llama_config: hidden_size={fields['hidden_size']} is not divisible by "
            f"num_attention_heads={fields['num_attention_heads']}"
        )
    return LlamaConfig(**fields)

"""Models: loading any causal LM, the word-level tokenizer and the embedded default models."""

from fastngd.models.config import TINY_LLAMA_DEFAULTS, tiny_llama_config
from fastngd.models.embedded import (
    EMBEDDED_FORMAT_VERSION,
    default_cache_dir,
    embedded_model_key,
    get_embedded_model,
)
from fastngd.models.loading import (
    check_compatible,
    ensure_pad_token,
    load_model,
    resolve_device,
    resolve_dtype,
)
from fastngd.models.lora import apply_lora, is_lora_model, merge_lora, trainable_memory
from fastngd.models.target import is_embedded, load_target_model
from fastngd.models.tokenizer import SPECIAL_TOKENS, build_word_tokenizer
from fastngd.models.training import (
    BENCHMARKS,
    TrainingRecipe,
    benchmark_corpus,
    default_recipe,
    fit,
    train_target_model,
)

__all__ = [
    "BENCHMARKS",
    "EMBEDDED_FORMAT_VERSION",
    "SPECIAL_TOKENS",
    "TINY_LLAMA_DEFAULTS",
    "TrainingRecipe",
    "apply_lora",
    "benchmark_corpus",
    "build_word_tokenizer",
    "check_compatible",
    "default_cache_dir",
    "default_recipe",
    "embedded_model_key",
    "ensure_pad_token",
    "fit",
    "get_embedded_model",
    "is_embedded",
    "is_lora_model",
    "load_model",
    "load_target_model",
    "merge_lora",
    "resolve_device",
    "resolve_dtype",
    "tiny_llama_config",
    "train_target_model",
    "trainable_memory",
]

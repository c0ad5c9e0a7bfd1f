"""Data layer: benchmark loaders, the embedded synthetic benchmarks and tokenization."""

from fastngd.data.export import export_benchmark
from fastngd.data.muse import MUSE_CORPORA, MUSE_SCHEMAS, load_muse, validate_muse
from fastngd.data.optional import MissingDataWarning
from fastngd.data.registry import BENCHMARKS, Benchmark, get_benchmark, load_benchmark
from fastngd.data.sanity import DataWarning, warn_overlap, warn_unknown_tokens
from fastngd.data.synthetic_muse import MUSE_SYNTHETIC_SPLITS, muse_synthetic
from fastngd.data.synthetic_tofu import TOFU_SYNTHETIC_CONFIGS, tofu_synthetic
from fastngd.data.tofu import TOFU_HUB_ID, TOFU_SCHEMAS, load_tofu, validate_tofu
from fastngd.data.tokenize import (
    IGNORE_INDEX,
    Encoding,
    QADataset,
    TextDataset,
    collate_right_pad,
    encode_prompt,
    encode_qa,
    encode_text,
    format_chat_prompt,
    format_prompt,
    has_chat_template,
    left_pad_ids,
    left_pad_prompts,
    rows_dataset,
)

__all__ = [
    "BENCHMARKS",
    "IGNORE_INDEX",
    "MUSE_CORPORA",
    "MUSE_SCHEMAS",
    "MUSE_SYNTHETIC_SPLITS",
    "TOFU_HUB_ID",
    "TOFU_SCHEMAS",
    "TOFU_SYNTHETIC_CONFIGS",
    "Benchmark",
    "DataWarning",
    "Encoding",
    "MissingDataWarning",
    "QADataset",
    "TextDataset",
    "collate_right_pad",
    "encode_prompt",
    "encode_qa",
    "encode_text",
    "export_benchmark",
    "format_chat_prompt",
    "format_prompt",
    "get_benchmark",
    "has_chat_template",
    "left_pad_ids",
    "left_pad_prompts",
    "load_benchmark",
    "load_muse",
    "load_tofu",
    "muse_synthetic",
    "rows_dataset",
    "tofu_synthetic",
    "validate_muse",
    "validate_tofu",
    "warn_overlap",
    "warn_unknown_tokens",
]

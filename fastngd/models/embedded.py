"""The embedded default models: trained once by the package, cached on disk, then reused."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fastngd.models.config import TINY_LLAMA_DEFAULTS
from fastngd.models.loading import load_model
from fastngd.models.training import (
    TrainingRecipe,
    benchmark_corpus,
    default_recipe,
    train_target_model,
)

__all__ = [
    "EMBEDDED_FORMAT_VERSION",
    "default_cache_dir",
    "embedded_model_key",
    "get_embedded_model",
]

#: Bumped whenever the training code changes in a way that changes the trained weights.
EMBEDDED_FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$FASTNGD_CACHE`` when set, else ``~/.cache/fastngd``."""
    env = os.environ.get("FASTNGD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fastngd"


def embedded_model_key(benchmark: str, seed: int = 0, recipe: TrainingRecipe | None = None) -> str:
    """Cache key ``"{benchmark}-seed{seed}-{hash}"`` of an embedded model.

    The hash is the first 12 hex digits of the SHA-256 of a JSON document holding
    :data:`EMBEDDED_FORMAT_VERSION`, the recipe (default :func:`default_recipe`), the model
    defaults and the full training corpus, so any change to data, sizes or training gives a
    new key.
    """
    recipe = recipe or default_recipe(benchmark)
    qa, texts, vocab = benchmark_corpus(benchmark, seed)
    payload = json.dumps(
        {
            "version": EMBEDDED_FORMAT_VERSION,
            "recipe": asdict(recipe),
            "model": TINY_LLAMA_DEFAULTS,
            "qa": qa,
            "texts": texts,
            "vocab": vocab,
        },
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]
    return f"{benchmark}-seed{seed}-{digest}"


def get_embedded_model(
    benchmark: str = "tofu-synthetic",
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, Path]:
    """Return ``(model, tokenizer, path)`` of the embedded model of ``benchmark``.

    The model lives in ``cache_dir / embedded_model_key(benchmark, seed)`` (default cache
    :func:`default_cache_dir`). When that directory is absent the model is trained first with
    :func:`train_target_model` and the default recipe; later calls only load it with
    :func:`load_model` (float32, on ``device``, eval mode). When another process finishes the
    same model first, its copy is used.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = root / embedded_model_key(benchmark, seed)
    if not path.exists():
        try:
            train_target_model(benchmark, seed=seed, out_dir=path, progress=progress)
        except (FileExistsError, OSError):
            if not path.exists():
                raise
    model, tokenizer = load_model(str(path), dtype="float32", device=device)
    return model, tokenizer, path

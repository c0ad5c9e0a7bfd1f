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
    Corpus,
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


def embedded_model_key(
    benchmark: str, seed: int = 0, recipe: TrainingRecipe | None = None, *,
    split: str = "full", data_dir: str | Path | None = None, corpus: Corpus | None = None,
) -> str:
    """Cache key of an embedded model: ``"{benchmark}-seed{seed}-{hash}"`` for the target
    model (``split="full"``), ``"{benchmark}-{split}-seed{seed}-{hash}"`` for a retain-only
    reference model.

    The hash is the first 12 hex digits of the SHA-256 of a JSON document holding
    :data:`EMBEDDED_FORMAT_VERSION`, the recipe (default :func:`default_recipe`), the model
    defaults, the split (when not ``"full"``) and the full training corpus of
    :func:`benchmark_corpus` (with ``data_dir``: the content of the user's files, not their
    path), so any change to data, sizes or training gives a new key and the same files give
    the same model wherever they are. ``corpus``: that corpus when the caller has it already
    (it is then not built, nor the user's files read, again).
    """
    recipe = recipe or default_recipe(benchmark)
    if corpus is None:
        corpus = benchmark_corpus(benchmark, seed, split=split, data_dir=data_dir)
    qa, texts, vocab = corpus
    document: dict[str, object] = {
        "version": EMBEDDED_FORMAT_VERSION,
        "recipe": asdict(recipe),
        "model": TINY_LLAMA_DEFAULTS,
        "qa": qa,
        "texts": texts,
        "vocab": vocab,
    }
    if split != "full":
        document["split"] = split
    payload = json.dumps(document, sort_keys=True, default=str)
    digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]
    name = benchmark if split == "full" else f"{benchmark}-{split}"
    return f"{name}-seed{seed}-{digest}"


def get_embedded_model(
    benchmark: str = "tofu-synthetic",
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    split: str = "full",
    data_dir: str | Path | None = None,
    recipe: TrainingRecipe | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, Path]:
    """Return ``(model, tokenizer, path)`` of the embedded model of ``benchmark``.

    ``split`` (``"full"``: the target model; ``"retain90"``... or, MUSE layout,
    ``"retain"``: the retain-only reference model of forget quality), ``data_dir`` (a
    user's files of ``tofu``, ``muse-news`` or ``muse-books``) and ``recipe`` (default
    :func:`default_recipe`) choose the model. It lives in ``cache_dir /``
    :func:`embedded_model_key` (default cache :func:`default_cache_dir`). When that directory
    is absent the model is trained first with :func:`train_target_model`; later calls only
    load it with :func:`load_model` (float32, on ``device``, eval mode). When another
    process finishes the same model first, its copy is used. The training corpus
    (:func:`benchmark_corpus`; a user's files) is built, and read, once.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    corpus = benchmark_corpus(benchmark, seed, split=split, data_dir=data_dir)
    path = root / embedded_model_key(benchmark, seed, recipe, split=split, data_dir=data_dir,
                                     corpus=corpus)
    if not path.exists():
        try:
            train_target_model(benchmark, seed=seed, out_dir=path, progress=progress,
                               recipe=recipe, split=split, data_dir=data_dir, corpus=corpus)
        except (FileExistsError, OSError):
            if not path.exists():
                raise
    model, tokenizer = load_model(str(path), dtype="float32", device=device)
    return model, tokenizer, path

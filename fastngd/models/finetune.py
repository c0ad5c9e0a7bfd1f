"""``fastngd finetune``: train the embedded model (on a built-in benchmark or a user's files),
or fine-tune a given model on QA rows.

* ``--model embedded`` (default): the package's small word-level Llama, trained from scratch
  with its own recipe (:func:`fastngd.models.default_recipe`; ``--epochs``, ``--lr`` and
  ``--batch-size`` override it) on ``--benchmark`` — a built-in benchmark, or the user's
  files of ``tofu``, ``muse-news`` or ``muse-books`` in ``--data-dir``. The model is cached
  by the content of its training data and recipe (:func:`fastngd.models.get_embedded_model`)
  and copied into ``--out``.
* a Hugging Face id or folder: fine-tuned on the QA split of a TOFU-style benchmark
  (defaults for pretrained models: 5 epochs, lr 1e-5, batch 16).

``--split`` picks the training data: ``full`` (the target model that will unlearn) or a
retain split (``retain90`` for ``forget10``...; MUSE layout: ``retain``), the retain-only
reference model whose truth ratios give TOFU's forget quality.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastngd.atomic import write_folder
from fastngd.data.loading import QA_BENCHMARKS, check_data_dir, load_split
from fastngd.errors import UsageError
from fastngd.models.loading import resolve_device, resolve_dtype
from fastngd.models.target import is_embedded, load_target_model
from fastngd.models.training import (
    BENCHMARKS,
    TrainingRecipe,
    check_embedded_data,
    default_recipe,
    fit,
)

__all__ = [
    "FINETUNE_QA_BENCHMARKS",
    "PRETRAINED_RECIPE",
    "check_finetune_args",
    "embedded_recipe",
    "finetune",
]

FINETUNE_QA_BENCHMARKS: tuple[str, ...] = QA_BENCHMARKS
"""Benchmarks whose QA splits a given ``--model`` can be fine-tuned on: the QA benchmarks
(:data:`fastngd.data.loading.QA_BENCHMARKS`)."""

PRETRAINED_RECIPE = TrainingRecipe(epochs=5, lr=1e-5, batch_size=16)
"""The defaults of fine-tuning a given (pretrained) model; the embedded model has its own
(:func:`fastngd.models.default_recipe`)."""


def _check_split(benchmark: str, split: str) -> None:
    """``full``, one of the benchmark's retain splits (TOFU layout: retain90/95/99) or
    ``retain`` (MUSE layout)."""
    from fastngd.data.loading import retain_splits

    tofu = benchmark.startswith("tofu")
    valid = ("full", *retain_splits(benchmark)) if tofu else ("full", "retain")
    if split not in valid:
        raise UsageError(f"--split {split} is not supported for --benchmark {benchmark}; "
                         f"supported: {', '.join(valid)} (a folder or file of another name in "
                         "--data-dir is not read)")


def check_finetune_args(model: str | None, benchmark: str, *, split: str = "full",
                        data_dir: str | Path | None = None) -> None:
    """Refuse combinations that cannot work, before any work: the embedded model trains on
    the benchmarks of :data:`fastngd.models.training.BENCHMARKS` (those of a hub layout on
    the user's files, ``data_dir``); a given model is fine-tuned on the QA benchmarks only;
    ``split`` must be ``full`` or a retain split of the benchmark's layout."""
    if is_embedded(model):
        if benchmark not in BENCHMARKS:
            raise UsageError(
                f"the embedded model trains on {', '.join(BENCHMARKS)}, not on {benchmark}"
            )
        check_embedded_data(benchmark, data_dir)
    elif benchmark not in FINETUNE_QA_BENCHMARKS:
        raise UsageError(
            f"fine-tuning a given --model works on the QA benchmarks "
            f"{', '.join(FINETUNE_QA_BENCHMARKS)}, not on {benchmark}"
        )
    _check_split(benchmark, split)


def _overridden(recipe: TrainingRecipe, epochs: int | None, lr: float | None,
                batch_size: int | None) -> TrainingRecipe:
    changes = {k: v for k, v in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size))
               if v is not None}
    return TrainingRecipe(**{**asdict(recipe), **changes})


def embedded_recipe(benchmark: str, *, epochs: int | None = None, lr: float | None = None,
                    batch_size: int | None = None) -> TrainingRecipe | None:
    """The embedded model's recipe of ``benchmark`` with the given overrides (``None`` when
    nothing is overridden: the default recipe, whose cached model the other commands find
    by themselves)."""
    if epochs is None and lr is None and batch_size is None:
        return None
    return _overridden(default_recipe(benchmark), epochs, lr, batch_size)


def _copy_folder(source: Path, out: Path) -> None:
    """Copy the files of ``source`` into ``out`` (replacing only those files)."""
    def write(tmp: Path) -> None:
        for item in source.iterdir():
            if item.is_file():
                shutil.copyfile(item, tmp / item.name)

    write_folder(out, write, overwrite=True)


def finetune(
    out: Path,
    *,
    model: str | None,
    benchmark: str,
    rows: list[dict[str, Any]] | None = None,
    seed: int = 0,
    split: str = "full",
    data_dir: str | Path | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train the embedded model of ``benchmark``/``split`` (``data_dir``: a user's files)
    into ``out``, or fine-tune ``model`` on ``rows`` (default: the benchmark's ``split`` QA
    rows, read here) for ``epochs``, ``lr``, ``batch_size`` (:data:`PRETRAINED_RECIPE` by
    default) and save it there. Files of ``out`` that this does not write are never touched;
    those it writes replace their namesakes. Returns ``out``.

    The arguments are checked before any work: :func:`check_finetune_args`, ``data_dir``
    (:func:`fastngd.data.loading.check_data_dir`), ``dtype`` and ``device``; a bad
    combination is a :class:`fastngd.errors.UsageError` naming the flag.
    """
    check_finetune_args(model, benchmark, split=split, data_dir=data_dir)
    check_data_dir(benchmark, data_dir)
    resolve_dtype(dtype)
    resolve_device(device)
    if is_embedded(model):
        from fastngd.models.embedded import get_embedded_model

        recipe = embedded_recipe(benchmark, epochs=epochs, lr=lr, batch_size=batch_size)
        _, _, cached = get_embedded_model(benchmark, seed=seed, cache_dir=cache_dir,
                                          split=split, data_dir=data_dir, recipe=recipe)
        _copy_folder(cached, out)
        log(f"trained the embedded {benchmark} model on {split} into {out} (cached in "
            f"{cached})")
        return out
    from fastngd.data import QADataset

    if rows is None:
        rows = load_split(benchmark, split, data_dir=data_dir, seed=seed)
    loaded, tokenizer, _ = load_target_model(model, benchmark=benchmark, seed=seed,
                                             device=device, dtype=dtype)
    recipe = _overridden(PRETRAINED_RECIPE, epochs, lr, batch_size)
    loss = fit(loaded, QADataset(rows or [], tokenizer, recipe.max_length), tokenizer, recipe,
               seed=seed)

    def write(folder: Path) -> None:
        loaded.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    write_folder(out, write, overwrite=True)
    log(f"fine-tuned {model} on {benchmark}/{split} (final loss {loss:.4f}) -> {out}")
    return out

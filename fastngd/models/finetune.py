"""``fastngd finetune``: train the embedded model, or fine-tune a given model on QA rows."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastngd.atomic import write_folder
from fastngd.errors import UsageError
from fastngd.models.target import is_embedded, load_target_model
from fastngd.models.training import BENCHMARKS, TrainingRecipe, fit

__all__ = ["FINETUNE_QA_BENCHMARKS", "check_finetune_args", "finetune"]

FINETUNE_QA_BENCHMARKS: tuple[str, ...] = ("tofu-synthetic", "tofu")
"""Benchmarks whose ``full`` QA set a given ``--model`` can be fine-tuned on."""


def check_finetune_args(
    model: str | None, benchmark: str, *, lr: float | None = None,
    batch_size: int | None = None,
) -> None:
    """Refuse combinations that cannot work, before any work: the embedded model trains only
    on the synthetic benchmarks and takes no ``--lr``/``--batch-size`` (its recipe is
    fixed); a given model is fine-tuned on QA benchmarks only."""
    if is_embedded(model):
        if benchmark not in BENCHMARKS:
            raise UsageError(
                f"--benchmark {benchmark} needs --model (a Hugging Face id or folder to "
                f"fine-tune); the embedded model trains only on {', '.join(BENCHMARKS)}"
            )
        given = [flag for flag, value in (("--lr", lr), ("--batch-size", batch_size))
                 if value is not None]
        if given:
            raise UsageError(
                f"{' and '.join(given)} apply only when fine-tuning a given --model (the "
                "embedded model has a fixed recipe; --epochs changes its length)"
            )
    elif benchmark not in FINETUNE_QA_BENCHMARKS:
        raise UsageError(
            f"fine-tuning a given --model works on the QA benchmarks "
            f"{', '.join(FINETUNE_QA_BENCHMARKS)}, not on {benchmark}"
        )


def finetune(
    out: Path,
    *,
    model: str | None,
    benchmark: str,
    rows: list[dict[str, Any]] | None = None,
    seed: int = 0,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    log: Callable[[str], None] = print,
) -> Path:
    """Train the embedded model of ``benchmark`` into ``out``, or fine-tune ``model`` on
    ``rows`` (the benchmark's ``full`` QA set) for ``epochs`` (5), ``lr`` (1e-5),
    ``batch_size`` (16) and save it there. Files of ``out`` that this does not write are
    never touched; those it writes replace their namesakes. Returns ``out``."""
    check_finetune_args(model, benchmark, lr=lr, batch_size=batch_size)
    if is_embedded(model):
        from fastngd.models.training import train_target_model

        train_target_model(benchmark, seed=seed, out_dir=out, epochs=epochs, progress=True,
                           overwrite=True)
        log(f"trained the embedded {benchmark} model into {out}")
        return out
    from fastngd.data import QADataset

    loaded, tokenizer, _ = load_target_model(model, benchmark=benchmark, seed=seed,
                                             device=device, dtype=dtype)
    recipe = TrainingRecipe(epochs=epochs or 5, lr=lr or 1e-5, batch_size=batch_size or 16)
    loss = fit(loaded, QADataset(rows or [], tokenizer, recipe.max_length), tokenizer, recipe,
               seed=seed)

    def write(folder: Path) -> None:
        loaded.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    write_folder(out, write, overwrite=True)
    log(f"fine-tuned {model} on {benchmark}/full (final loss {loss:.4f}) -> {out}")
    return out

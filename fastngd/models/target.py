"""The model a command works on: the embedded model of a benchmark, or any saved causal LM."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastngd.errors import UsageError
from fastngd.models.loading import load_model, resolve_device, resolve_dtype
from fastngd.models.training import BENCHMARKS, check_embedded_data

__all__ = ["is_embedded", "load_target_model"]


def is_embedded(name: str | None) -> bool:
    """Whether ``--model`` names the embedded model (``None``, ``""`` or ``"embedded"``)."""
    return name in (None, "", "embedded")


def load_target_model(
    name: str | None,
    *,
    benchmark: str,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    data_dir: str | Path | None = None,
    split: str = "full",
) -> tuple[Any, Any, str]:
    """``(model, tokenizer, source)`` for ``--model name``.

    ``embedded`` builds (or reuses from the cache) the package's small model trained on
    ``benchmark`` (:func:`fastngd.models.get_embedded_model`: a built-in benchmark, or the
    files of ``tofu``/``muse-news``/``muse-books`` in ``data_dir``; ``split`` picks the
    target model, ``"full"``, or a retain-only reference); anything else is a Hugging Face
    id or a saved folder (:func:`load_model`, whose errors name the folder). ``source`` is
    the folder or id the model came from.
    """
    torch_dtype = resolve_dtype(dtype)
    resolve_device(device)
    if not is_embedded(name):
        model, tokenizer = load_model(str(name), dtype=torch_dtype, device=device)
        return model, tokenizer, str(name)
    if benchmark not in BENCHMARKS:
        raise UsageError(
            f"the embedded model exists only for {list(BENCHMARKS)}; pass --model with a "
            f"Hugging Face id or folder for --benchmark {benchmark}"
        )
    check_embedded_data(benchmark, data_dir)
    from fastngd.models.embedded import get_embedded_model

    model, tokenizer, path = get_embedded_model(
        benchmark, seed=seed, cache_dir=cache_dir, device=device, progress=progress,
        split=split, data_dir=data_dir,
    )
    if model.dtype != torch_dtype:
        model.to(torch_dtype)  # type: ignore[arg-type]
    return model, tokenizer, str(path)

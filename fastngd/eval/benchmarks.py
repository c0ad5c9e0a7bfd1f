"""Evaluate a model on a named benchmark: load exactly the splits the protocol uses (the
optional ones as optional) and run the TOFU or MUSE protocol.

Optional splits (``*_perturbed`` for truth ratios and model utility, the holdout set for
membership inference, the ``*_icl`` few-shot examples) that are missing or broken are
skipped with a :class:`fastngd.data.MissingDataWarning`; the metrics that need them are
then None (or, for KnowMem, zero-shot), see ``docs/eval_layout.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fastngd.data.loading import QA_BENCHMARKS
from fastngd.data.registry import get_benchmark, load_benchmark
from fastngd.eval.muse_protocol import evaluate_muse
from fastngd.eval.tofu_protocol import TOFU_RETAIN_SPLITS, evaluate_tofu, holdout_split_for

__all__ = [
    "MUSE_EVAL_SPLITS",
    "QA_BENCHMARKS",
    "evaluate_benchmark",
    "load_muse_eval_data",
    "load_tofu_eval_data",
    "tofu_eval_configs",
]

MUSE_EVAL_SPLITS: dict[tuple[str, str], bool] = {
    ("verbmem", "forget"): True,
    ("knowmem", "forget_qa"): True,
    ("knowmem", "retain_qa"): True,
    ("privleak", "forget"): True,
    ("knowmem", "forget_qa_icl"): False,
    ("knowmem", "retain_qa_icl"): False,
    ("privleak", "holdout"): False,
}
"""(config, split) → required, for :func:`evaluate_muse`."""


def tofu_eval_configs(
    forget_split: str = "forget10", retain_split: str | None = None
) -> tuple[list[str], list[str]]:
    """``(required, optional)`` TOFU configs of :func:`evaluate_tofu` for a forget split.

    Required: ``forget_split`` and ``retain_split`` when given (e.g. ``"retain90"``).
    Optional: ``{forget_split}_perturbed`` (truth ratio, forget quality), the retain-type
    configs of :data:`TOFU_RETAIN_SPLITS` (model utility) and the holdout config
    (:func:`holdout_split_for`, membership inference).
    """
    required = [forget_split] + ([retain_split] if retain_split else [])
    optional = [f"{forget_split}_perturbed", *TOFU_RETAIN_SPLITS, holdout_split_for(forget_split)]
    return required, optional


def load_tofu_eval_data(
    benchmark: str = "tofu-synthetic",
    forget_split: str = "forget10",
    *,
    retain_split: str | None = None,
    data_dir: str | Path | None = None,
    seed: int = 0,
    loaded: Mapping[str, list[dict[str, Any]]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Config → rows for :func:`evaluate_tofu` on ``benchmark`` (:func:`tofu_eval_configs`).

    Required configs raise like :func:`fastngd.data.load_benchmark`; optional ones the
    benchmark does not define are left out, and missing or broken ones are left out with a
    :class:`~fastngd.data.MissingDataWarning`. ``loaded`` holds configs the caller has read
    already: they are used as they are, not read again. Raises ``ValueError`` when the
    benchmark has no required config.
    """
    bench = get_benchmark(benchmark)
    kwargs: dict[str, Any] = {"seed": seed}
    if not bench.synthetic:
        kwargs["data_dir"] = data_dir
    required, optional = tofu_eval_configs(forget_split, retain_split)
    given = loaded or {}
    data = {config: given[config] if config in given
            else load_benchmark(benchmark, config, **kwargs) for config in required}
    for config in optional:
        if config in given:
            data[config] = given[config]
        elif config in bench.splits:
            rows = load_benchmark(benchmark, config, optional=True, **kwargs)
            if rows is not None:
                data[config] = rows
    return data


def load_muse_eval_data(
    benchmark: str = "muse-synthetic", *, data_dir: str | Path | None = None, seed: int = 0
) -> dict[str, dict[str, list[dict[str, Any]] | None]]:
    """Config → split → rows for :func:`evaluate_muse` (:data:`MUSE_EVAL_SPLITS`); optional
    splits that are missing or broken are None, with a warning."""
    bench = get_benchmark(benchmark)
    kwargs: dict[str, Any] = {"seed": seed}
    if not bench.synthetic:
        kwargs["data_dir"] = data_dir
    data: dict[str, dict[str, list[dict[str, Any]] | None]] = {}
    for (config, split), required in MUSE_EVAL_SPLITS.items():
        rows = load_benchmark(benchmark, config, split, optional=not required, **kwargs)
        data.setdefault(config, {})[split] = rows
    return data


def evaluate_benchmark(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    benchmark: str,
    *,
    forget_split: str = "forget10",
    retain_split: str | None = None,
    data_dir: str | Path | None = None,
    seed: int = 0,
    reference: Any = None,
    loaded: Mapping[str, list[dict[str, Any]]] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``benchmark`` and return the common layout, plus
    ``"benchmark"``.

    TOFU-style benchmarks (:data:`fastngd.data.loading.QA_BENCHMARKS`): :func:`evaluate_tofu`
    on :func:`load_tofu_eval_data` with ``forget_split``, ``retain_split`` (the whole retain
    split, e.g. ``"retain90"``), ``reference`` (forget quality) and ``loaded`` (configs read
    already, not read again). MUSE-style ones: :func:`evaluate_muse` on
    :func:`load_muse_eval_data` with the corpus's PrivLeak reference AUC; ``forget_split``,
    ``retain_split``, ``reference`` and ``loaded`` must then be left at their defaults. Other
    keyword arguments go to the protocol.
    """
    if benchmark in QA_BENCHMARKS:
        data = load_tofu_eval_data(
            benchmark, forget_split, retain_split=retain_split, data_dir=data_dir, seed=seed,
            loaded=loaded,
        )
        result = evaluate_tofu(
            model,
            tokenizer,
            data,
            forget_split=forget_split,
            retain_split=retain_split,
            reference=reference,
            **kwargs,
        )
    else:
        if (retain_split is not None or reference is not None or loaded is not None
                or forget_split != "forget10"):
            raise ValueError(
                f"{benchmark} uses the MUSE protocol: forget_split, retain_split, reference "
                "(TOFU's forget quality) and loaded (TOFU configs) do not apply"
            )
        muse_data = load_muse_eval_data(benchmark, data_dir=data_dir, seed=seed)
        kwargs.setdefault("corpus", benchmark)
        result = evaluate_muse(model, tokenizer, muse_data, **kwargs)
    return {"benchmark": benchmark, **result}

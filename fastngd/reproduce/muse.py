"""MUSE-style experiments: unlearn the raw forget texts, evaluate VerbMem, KnowMem, PrivLeak.

The forget set is ``raw/forget`` and the retain set ``raw/retain1`` + ``raw/retain2`` (every
token carries the loss), each followed by the knowmem QA pairs the target was trained on for
the benchmarks of :data:`fastngd.data.loading.TRAINED_QA` (answer tokens carry the loss; see
:func:`fastngd.data.loading.muse_unlearning_rows`); evaluation is
:func:`fastngd.eval.evaluate_muse` (ROUGE-L F1 ×100 of MUSE's 128-token continuations and
32-token few-shot answers, Min-K% membership AUC forget vs holdout, PrivLeak against the
reference AUC of the corpus).
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastngd.data.loading import muse_unlearning_rows
from fastngd.data.tokenize import rows_dataset
from fastngd.eval import evaluate_muse
from fastngd.eval.muse_protocol import Data
from fastngd.reproduce.tofu import RunSpec
from fastngd.unlearn import UnlearnConfig, UnlearningDiverged, get_method, unlearn

__all__ = ["muse_evaluator", "run_muse"]


def muse_evaluator(
    tokenizer: Any, data: Data, *,
    corpus: str | None = None, verbmem_max_new_tokens: int = 128,
    knowmem_max_new_tokens: int = 32, max_length: int = 256,
) -> Callable[[Any], dict[str, Any]]:
    """An evaluate hook for :func:`fastngd.unlearn.unlearn`: the aggregate of
    :func:`fastngd.eval.evaluate_muse` (``verbmem_forget``, ``knowmem_forget``,
    ``knowmem_retain``, ``privleak``...) on ``data``. ``corpus`` (the benchmark name, e.g.
    ``"muse-news"``) picks the PrivLeak reference AUC of the retrained model; the token
    counts are MUSE's."""

    def evaluate(model: Any) -> dict[str, Any]:
        res = evaluate_muse(model, tokenizer, data, verbmem_max_new_tokens=verbmem_max_new_tokens,
                            knowmem_max_new_tokens=knowmem_max_new_tokens, max_length=max_length,
                            corpus=corpus)
        return dict(res["aggregate"])

    return evaluate


def _one_decimal(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def run_muse(
    model: Any,
    tokenizer: Any,
    data: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
    runs: Sequence[RunSpec],
    *,
    seed: int = 0,
    config: UnlearnConfig | None = None,
    unlearn_options: Mapping[str, Any] | None = None,
    corpus: str | None = None,
    max_length: int = 256,
    verbmem_max_new_tokens: int = 128,
    knowmem_max_new_tokens: int = 32,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Unlearn ``data["raw"]["forget"]`` (with the trained forget QA of ``corpus``, see the
    module docstring) from copies of ``model`` with every run of ``runs``.

    Every run starts from ``config`` (default :class:`fastngd.unlearn.UnlearnConfig`) with
    ``unlearn_options`` applied, then its own method, AutoLR, lr and options. ``corpus``
    (``"muse-news"``, ``"muse-books"``, ``"muse-synthetic"``) picks PrivLeak's reference
    AUC (:func:`fastngd.eval.retrain_auc`).

    Returns ``{"no_unlearn": aggregate, "methods": {name: aggregate + run info},
    "curves": {name: {"history": [...]}}, "seed"}`` with the aggregates of
    :func:`fastngd.eval.evaluate_muse`; ``model`` itself is not modified.
    """
    for spec in runs:
        get_method(spec.method)
    forget_rows, retain_rows = muse_unlearning_rows(corpus, data)
    forget = rows_dataset(forget_rows, tokenizer, max_length)
    retain = rows_dataset(retain_rows, tokenizer, max_length)
    initial = copy.deepcopy(model.state_dict())
    base = (config or UnlearnConfig()).replace(**dict(unlearn_options or {}))
    evaluate = muse_evaluator(tokenizer, data, corpus=corpus,
                              verbmem_max_new_tokens=verbmem_max_new_tokens,
                              knowmem_max_new_tokens=knowmem_max_new_tokens,
                              max_length=max_length)

    log("evaluating the target model (no unlearning)")
    no_unlearn = evaluate(model)
    methods: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    for spec in runs:
        run_config = base.replace(method=spec.method, autolr=spec.autolr, lr=spec.lr,
                                  seed=seed, **dict(spec.options))
        worker = copy.deepcopy(model)
        worker.load_state_dict(initial)
        info: dict[str, Any] = {"method": get_method(spec.method).name, "autolr": spec.autolr,
                                "base": run_config.base, "lr": spec.lr}
        t0 = time.perf_counter()
        try:
            result = unlearn(worker, forget, retain, run_config, progress=progress)
        except UnlearningDiverged as exc:
            methods[spec.name] = {**info, "diverged": True, "message": str(exc)}
            log(f"  {spec.name}: {exc}")
            continue
        summary = evaluate(worker)
        info.update(diverged=False, steps=result.steps, final_lr=result.final_lr,
                    unlearn_seconds=time.perf_counter() - t0)
        methods[spec.name] = {**summary, **info}
        curves[spec.name] = {"history": result.history}
        log(f"  {spec.name:<18} verbmem {summary['verbmem_forget']:.1f}  knowmem forget "
            f"{summary['knowmem_forget']:.1f}  retain {summary['knowmem_retain']:.1f}  "
            f"privleak {_one_decimal(summary.get('privleak'))}")
    return {"no_unlearn": no_unlearn, "methods": methods, "curves": curves, "seed": seed}

"""TOFU-style experiments: unlearn a forget split with several methods, evaluate, summarise.

One *run* is a method with its settings (:class:`RunSpec`); :func:`run_tofu` starts each run
from the same target model, unlearns ``forget10`` (by default) while keeping the matching
``retain90``, records cheap learning curves (ROUGE-L recall of greedy answers on the forget
split and on ``retain_perturbed``) and ends with the TOFU protocol
(:func:`fastngd.eval.evaluate_tofu`). :func:`summarise_tofu` reduces that protocol's output
to the NGDiff paper's table metrics:

* ``verbmem``: ROUGE-L recall of continuations of half-given forget answers (↓);
* ``forget_rouge_l_recall`` (the NGDiff paper's Knowmem): ROUGE-L recall of answers to the
  forget questions (↓);
* ``utility`` = ``retain_rouge_l_recall``: ROUGE-L recall on the retain questions (↑);
* ``truth_ratio``: forget-split ``mean min(tr, 1/tr)``;
* ``model_utility`` (TOFU's harmonic mean of its 9 ``model_utility_components``),
  ``forget_quality`` (KS p-value against a retain-only reference model, when one is given),
  ``mia`` and ``privleak`` (forget vs holdout answers), ``extraction_strength``,
  ``exact_memorization``; fact accuracies.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from fastngd.data.loading import tofu_configs
from fastngd.data.tokenize import QADataset, format_prompt
from fastngd.eval import (
    ReferenceTruthRatios,
    evaluate_tofu,
    fact_accuracy,
    generate,
    holdout_split_for,
    reference_truth_ratios,
    rouge_l_recall,
)
from fastngd.unlearn import UnlearnConfig, UnlearningDiverged, get_method, unlearn

__all__ = [
    "TOFU_EVAL_CONFIGS",
    "RunSpec",
    "answer_scores",
    "run_tofu",
    "summarise_tofu",
    "tofu_curve",
    "tofu_eval_data",
]

TOFU_EVAL_CONFIGS = ("retain_perturbed", "world_facts_perturbed", "real_authors_perturbed")
"""Retain-type configs evaluated when the data has them (model utility); the holdout of the
forget split (membership inference, PrivLeak) is scored too, see :func:`tofu_eval_data`."""


@dataclass(frozen=True)
class RunSpec:
    """One unlearning run of an experiment.

    Attributes:
        name: the key in the results (e.g. ``"ngdiff"``, ``"gdiff-0.5"``, ``"npo+autolr"``).
        method: a method name of :func:`fastngd.unlearn.get_method`.
        autolr: GeN AutoLR on/off.
        lr: the (initial) learning rate.
        options: further :class:`fastngd.unlearn.UnlearnConfig` settings (``epochs``,
            ``autolr_scale``...), overriding the experiment's.
    """

    name: str
    method: str
    autolr: bool
    lr: float
    options: Mapping[str, Any] = field(default_factory=dict)


def tofu_eval_data(data: Mapping[str, Sequence[Mapping[str, Any]]], forget_split: str) -> dict[str, Any]:
    """The configs :func:`fastngd.eval.evaluate_tofu` scores that ``data`` has: the forget
    split and its perturbed version, the retain-type configs of :data:`TOFU_EVAL_CONFIGS`
    and the forget split's holdout (:func:`fastngd.eval.holdout_split_for`: ``holdout10``
    for ``forget10``)."""
    names = (f"{forget_split}_perturbed", forget_split, *TOFU_EVAL_CONFIGS,
             holdout_split_for(forget_split))
    out: dict[str, Any] = {name: data[name] for name in names if name in data}
    if forget_split not in out and f"{forget_split}_perturbed" not in out:
        raise KeyError(f"forget split {forget_split!r} is not in the data (configs: {sorted(data)})")
    return out


def answer_scores(
    model: Any,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    max_new_tokens: int,
    batch_size: int = 64,
) -> tuple[float, float | None]:
    """``(ROUGE-L recall, fact accuracy)`` of greedy answers to ``rows``' questions (means;
    fact accuracy is None without a ``fact`` field)."""
    prompts = [format_prompt(r["question"]) for r in rows]
    outs = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                    batch_size=batch_size)
    rouge = rouge_l_recall(outs, [r["answer"] for r in rows])
    facts = [r.get("fact") for r in rows]
    acc = None
    if all(isinstance(f, str) and f for f in facts):
        acc = sum(fact_accuracy(outs, facts)) / len(rows)  # type: ignore[arg-type]
    return sum(rouge) / len(rouge), acc


def tofu_curve(
    tokenizer: Any, forget_rows: Sequence[Mapping[str, Any]],
    retain_rows: Sequence[Mapping[str, Any]], *, max_new_tokens: int = 24,
) -> Callable[[Any], dict[str, Any]]:
    """An evaluate hook for :func:`fastngd.unlearn.unlearn`: ROUGE-L recall and fact
    accuracy (:func:`answer_scores`) of greedy answers on ``forget_rows`` and
    ``retain_rows``, as ``forget_rouge_l_recall``, ``retain_rouge_l_recall``,
    ``forget_fact_accuracy``, ``retain_fact_accuracy``."""

    def curve(model: Any) -> dict[str, Any]:
        f_rouge, f_acc = answer_scores(model, tokenizer, forget_rows,
                                       max_new_tokens=max_new_tokens)
        r_rouge, r_acc = answer_scores(model, tokenizer, retain_rows,
                                       max_new_tokens=max_new_tokens)
        return {"forget_rouge_l_recall": f_rouge, "retain_rouge_l_recall": r_rouge,
                "forget_fact_accuracy": f_acc, "retain_fact_accuracy": r_acc}

    return curve


def summarise_tofu(result: Mapping[str, Any]) -> dict[str, Any]:
    """The table metrics from an :func:`evaluate_tofu` result (see the module doc): the
    NGDiff paper's, TOFU's (``model_utility`` with ``model_utility_components`` and
    ``model_utility_zero_components``, ``forget_quality``) and open-unlearning's
    (``mia``: the four attacks' AUCs, ``privleak``, ``extraction_strength``,
    ``exact_memorization``); None where the data cannot give a metric. The retain metrics
    are those of the retain-type split (``retain_perturbed``), but for
    ``retain_fact_accuracy``, which is the whole retain split's (``retain_split`` of
    :func:`evaluate_tofu`) when that split has no ``fact`` field (as in the hub's TOFU)
    and the whole split was scored; ``retain_split_rouge_l_recall``,
    ``retain_split_fact_accuracy`` and ``retain_split_probability`` are the whole split's
    (None when it was not scored)."""
    agg = result["aggregate"]
    forget, retain = agg["forget"], agg.get("retain") or {}
    whole = agg.get("retain_split") or {}
    retain_facts = retain.get("fact_accuracy")
    if retain_facts is None:
        retain_facts = whole.get("fact_accuracy")
    world = agg.get("world_facts") or {}
    return {
        "verbmem": agg["seed_paper"]["verbmem"],
        "knowmem": agg["seed_paper"]["knowmem"],
        "utility": agg["seed_paper"]["utility"],
        "truth_ratio": agg["seed_paper"]["truth_ratio"],
        "forget_rouge_l_recall": forget["rougeL_recall"],
        "retain_rouge_l_recall": retain.get("rougeL_recall"),
        "world_facts_rouge_l_recall": world.get("rougeL_recall"),
        "forget_fact_accuracy": forget.get("fact_accuracy"),
        "retain_fact_accuracy": retain_facts,
        "forget_probability": forget.get("probability"),
        "retain_probability": retain.get("probability"),
        "retain_truth_ratio": retain.get("truth_ratio"),
        "model_utility": agg.get("model_utility"),
        "model_utility_components": agg.get("model_utility_components"),
        "model_utility_zero_components": agg.get("model_utility_zero_components"),
        "forget_quality": agg.get("forget_quality"),
        "mia": agg.get("mia"),
        "privleak": agg.get("privleak"),
        "extraction_strength": agg.get("extraction_strength"),
        "exact_memorization": agg.get("exact_memorization"),
        "retain_split_rouge_l_recall": whole.get("rougeL_recall"),
        "retain_split_fact_accuracy": whole.get("fact_accuracy"),
        "retain_split_probability": whole.get("probability"),
    }


def _finite_or_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Mapping):
        return {k: _finite_or_none(v) for k, v in x.items()}
    return x


@dataclass(frozen=True)
class _Settings:
    """What every run of one experiment shares (picklable, sent to worker processes)."""

    forget_split: str
    retain_split: str
    seed: int
    config: UnlearnConfig
    curve_points: int
    curve_max_new_tokens: int
    eval_max_new_tokens: int
    max_length: int
    progress: bool
    reference: ReferenceTruthRatios | None = None


def _evaluate_final(model: Any, tokenizer: Any, data: Mapping[str, Any],
                    settings: _Settings) -> dict[str, Any]:
    """:func:`summarise_tofu` of the TOFU protocol on the forget split, the retain-type
    splits and the holdout, with forget quality against ``settings.reference``."""
    result = evaluate_tofu(model, tokenizer, tofu_eval_data(data, settings.forget_split),
                           forget_split=settings.forget_split, batch_size=64,
                           max_new_tokens=settings.eval_max_new_tokens,
                           max_length=settings.max_length, reference=settings.reference)
    return {k: _finite_or_none(v) for k, v in summarise_tofu(result).items()}


def _one_run(model: Any, tokenizer: Any, data: Mapping[str, Any], spec: RunSpec,
             settings: _Settings) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Unlearn with ``spec`` (``model`` is modified), evaluate; returns (entry, curves)."""
    forget_rows = data[settings.forget_split]
    curve_retain = data.get("retain_perturbed") or data[settings.retain_split][: len(forget_rows)]
    forget_set = QADataset(forget_rows, tokenizer, settings.max_length)
    retain_set = QADataset(data[settings.retain_split], tokenizer, settings.max_length)
    config = settings.config.replace(method=spec.method, autolr=spec.autolr, lr=spec.lr,
                                     seed=settings.seed, **dict(spec.options))
    total = config.epochs * -(-len(forget_set) // config.batch_size)
    config = config.replace(eval_every=max(1, total // max(1, settings.curve_points)))
    curve = tofu_curve(tokenizer, forget_rows, curve_retain,
                       max_new_tokens=settings.curve_max_new_tokens)
    info: dict[str, Any] = {"method": get_method(spec.method).name, "autolr": spec.autolr,
                            "base": config.base, "lr": spec.lr,
                            "options": config.shared_options()}
    t0 = time.perf_counter()
    try:
        result = unlearn(model, forget_set, retain_set, config, evaluate=curve,
                         progress=settings.progress)
    except UnlearningDiverged as exc:
        info.update(diverged=True, message=str(exc), unlearn_seconds=time.perf_counter() - t0)
        return info, None
    seconds = time.perf_counter() - t0
    summary = _evaluate_final(model, tokenizer, data, settings)
    last = result.history[-1] if result.history else {}
    info.update(diverged=False, steps=result.steps, unlearn_seconds=seconds,
                final_lr=result.final_lr, final_loss_retain=last.get("loss_retain"),
                final_loss_forget=last.get("loss_forget"))
    return {**summary, **info}, {"evals": result.evals, "history": result.history}


def _worker_run(model_path: str, device: str, data: Mapping[str, Any], spec: RunSpec,
                settings: _Settings) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One run in a worker process: one torch thread, the model loaded from ``model_path``."""
    import torch

    from fastngd.models import load_model

    torch.set_num_threads(1)
    model, tokenizer = load_model(model_path, dtype="float32", device=device)
    return _one_run(model, tokenizer, data, spec, settings)


def _log_run(log: Callable[[str], None], name: str, entry: Mapping[str, Any]) -> None:
    if entry.get("diverged"):
        log(f"  {name}: {entry['message']}")
        return
    log(f"  {name:<18} forget ROUGE-L {entry['forget_rouge_l_recall']:.3f}  retain ROUGE-L "
        f"{entry['retain_rouge_l_recall']:.3f}  ({entry['unlearn_seconds']:.0f} s, "
        f"{entry['steps']} steps)")


Outcome = tuple[dict[str, Any], Optional[dict[str, Any]]]


def _run_all(model: Any, tokenizer: Any, data: Mapping[str, Any], runs: Sequence[RunSpec],
             settings: _Settings, jobs: int, model_path: str | None,
             log: Callable[[str], None]) -> dict[str, Outcome]:
    """Every run's ``(entry, curves)``, each from a copy of ``model``: in this process, or
    in ``jobs`` spawned workers that load ``model_path``."""
    outcomes: dict[str, Outcome] = {}
    if jobs > 1 and len(runs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        device = str(next(model.parameters()).device)
        context = multiprocessing.get_context("spawn")
        log(f"running {len(runs)} unlearning runs in {min(jobs, len(runs))} worker processes")
        with ProcessPoolExecutor(min(jobs, len(runs)), mp_context=context) as pool:
            futures = {
                pool.submit(_worker_run, str(model_path), device, dict(data), spec,
                            settings): spec.name
                for spec in runs
            }
            for future in as_completed(futures):
                name = futures[future]
                outcomes[name] = future.result()
                _log_run(log, name, outcomes[name][0])
        return outcomes
    initial = copy.deepcopy(model.state_dict())
    worker = copy.deepcopy(model)
    for spec in runs:
        worker.load_state_dict(initial)
        outcomes[spec.name] = _one_run(worker, tokenizer, data, spec, settings)
        _log_run(log, spec.name, outcomes[spec.name][0])
    return outcomes


def _reference_of(reference_model: tuple[Any, Any], data: Mapping[str, Any],
                  forget_split: str, max_length: int) -> ReferenceTruthRatios:
    """The forget truth ratios of the retain-only ``(model, tokenizer)`` on
    ``{forget_split}_perturbed`` (a KeyError when the data has none)."""
    rows = data.get(f"{forget_split}_perturbed")
    if rows is None:
        raise KeyError(f"forget quality needs {forget_split}_perturbed in the data")
    return reference_truth_ratios(*reference_model, rows, forget_split=forget_split,
                                  max_length=max_length, batch_size=64)


def run_tofu(
    model: Any,
    tokenizer: Any,
    data: Mapping[str, Sequence[Mapping[str, Any]]],
    runs: Sequence[RunSpec],
    *,
    forget_split: str = "forget10",
    seed: int = 0,
    config: UnlearnConfig | None = None,
    unlearn_options: Mapping[str, Any] | None = None,
    curve_points: int = 8,
    curve_max_new_tokens: int = 24,
    eval_max_new_tokens: int = 32,
    max_length: int = 128,
    jobs: int = 1,
    model_path: str | None = None,
    reference_model: tuple[Any, Any] | None = None,
    reference: ReferenceTruthRatios | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Unlearn ``forget_split`` from copies of ``model`` with every run of ``runs``.

    ``data`` maps TOFU config names to rows (e.g. :func:`fastngd.data.tofu_synthetic`); the
    retain set is ``retain{100 − p}`` for ``forget{p}``
    (:func:`fastngd.data.loading.tofu_configs`, a UsageError for a name not of that form).
    Every run starts from ``config``
    (default :class:`fastngd.unlearn.UnlearnConfig`) with ``unlearn_options`` applied, then
    its own method, AutoLR, lr and ``options``; ``seed`` is every run's seed. Learning
    curves hold about ``curve_points`` evaluations per run. A run that diverges is reported
    with ``"diverged": True`` and the message, the others go on. With ``jobs > 1`` the runs are spread over that many worker processes (one torch thread
    each), which load the model from ``model_path`` (required then, the saved ``model``).

    Forget quality (every summary's ``forget_quality``) needs the forget truth ratios of a
    model trained on the retain split only: ``reference_model`` = ``(model, tokenizer)`` of
    such a model (its truth ratios are computed here on ``{forget_split}_perturbed``, with
    ``max_length``), or ``reference``, precomputed on the same questions and length;
    without either it is None.

    Returns ``{"no_unlearn": summary, "methods": {name: summary + run info}, "curves":
    {name: {"evals", "history"}}, "seed"}``; ``model`` itself is not modified.
    """
    retain_split = tofu_configs(forget_split).retain
    if forget_split not in data or retain_split not in data:
        raise KeyError(
            f"need configs {forget_split!r} and {retain_split!r} (configs: {sorted(data)})"
        )
    for spec in runs:
        get_method(spec.method)
    if jobs > 1 and model_path is None:
        raise ValueError("jobs > 1 needs model_path (workers load the model themselves)")
    base = (config or UnlearnConfig()).replace(**dict(unlearn_options or {}))
    if reference_model is not None:
        if reference is not None:
            raise ValueError("pass reference_model or reference, not both")
        log("computing the reference truth ratios of the retain-only model")
        reference = _reference_of(reference_model, data, forget_split, max_length)
    settings = _Settings(forget_split, retain_split, seed, base, curve_points,
                         curve_max_new_tokens, eval_max_new_tokens, max_length,
                         progress and jobs == 1, reference)
    log("evaluating the target model (no unlearning)")
    t0 = time.perf_counter()
    no_unlearn = _evaluate_final(model, tokenizer, data, settings)
    no_unlearn["eval_seconds"] = time.perf_counter() - t0
    outcomes = _run_all(model, tokenizer, data, runs, settings, jobs, model_path, log)
    methods: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    for spec in runs:
        entry, curve_data = outcomes[spec.name]
        if entry.get("diverged"):
            entry = {**{k: None for k in no_unlearn if k != "eval_seconds"}, **entry}
        methods[spec.name] = entry
        if curve_data is not None:
            curves[spec.name] = curve_data
    return {"no_unlearn": no_unlearn, "methods": methods, "curves": curves, "seed": seed}


def run_spec_dict(spec: RunSpec) -> dict[str, Any]:
    """A plain-dict form of ``spec`` (for records)."""
    return asdict(spec)


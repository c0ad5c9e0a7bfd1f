"""``fastngd eval``: one model, the TOFU protocol (QA benchmarks) or the MUSE protocol.

Forget quality (TOFU) compares the forget split's truth ratios with those of a model trained
on the retain split only: ``--retain-model`` (a folder, a hub id, or ``embedded`` for the
embedded retain-only model of the benchmark) computes them here; ``--reference-truth-ratios``
reads them from a file (:func:`fastngd.eval.load_reference_truth_ratios`: a saved reference,
or the JSON ``fastngd eval --out`` wrote for the retain-only model).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["EVAL_MAX_LENGTH", "EVAL_MAX_NEW_TOKENS", "EvalRequest", "evaluate_model",
           "model_label"]

EVAL_MAX_LENGTH = 256
"""Token length of the scored QA examples (the evaluated and the reference model alike)."""

EVAL_MAX_NEW_TOKENS = 200
"""Generation length of the TOFU protocol where :attr:`EvalRequest.max_new_tokens` is None."""


@dataclass(frozen=True)
class EvalRequest:
    """What ``fastngd eval`` was asked (see the command's ``--help``).

    Attributes:
        model: ``--model`` (``None``/``"embedded"``: the embedded model of the benchmark).
        benchmark, data_dir, seed: the data.
        forget, retain_split: TOFU's forget split and the whole retain split to score too.
        retain_model, reference_file: the retain-only reference of forget quality.
        device, dtype, cache_dir: where and how models are loaded.
        max_new_tokens, max_examples: generation length (TOFU; None:
            :data:`EVAL_MAX_NEW_TOKENS`) and a cut of every split (None: none); both at
            least 1 when given.
        label: the table's row label (default :func:`model_label`).
    """

    model: str | None
    benchmark: str
    data_dir: str | None = None
    seed: int = 0
    forget: str = "forget10"
    retain_split: str | None = None
    retain_model: str | None = None
    reference_file: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    cache_dir: str | None = None
    max_new_tokens: int | None = None
    max_examples: int | None = None
    label: str | None = None


def model_label(model: str | None, benchmark: str) -> str:
    """The row label of a model: ``--model`` as given, or ``embedded <benchmark>``."""
    from fastngd.models.target import is_embedded

    return f"embedded {benchmark}" if is_embedded(model) else str(model)


def _reference(req: EvalRequest) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    """The reference truth ratios of forget quality (None without a retain-only model), and
    the configs read to compute them (``{forgetNN_perturbed: rows}`` with
    ``--retain-model``), which the evaluation then does not read again."""
    from fastngd.eval import load_reference_truth_ratios, reference_truth_ratios

    if req.reference_file is not None:
        return load_reference_truth_ratios(req.reference_file), {}
    if req.retain_model is None:
        return None, {}
    from fastngd.data.loading import load_split, tofu_configs
    from fastngd.models.target import load_target_model

    configs = tofu_configs(req.forget)
    model, tokenizer, source = load_target_model(
        req.retain_model, benchmark=req.benchmark, seed=req.seed, device=req.device,
        dtype=req.dtype, cache_dir=req.cache_dir, data_dir=req.data_dir, split=configs.retain)
    rows = load_split(req.benchmark, configs.forget_perturbed, data_dir=req.data_dir,
                      seed=req.seed) or []
    scored = rows if req.max_examples is None else rows[: req.max_examples]
    reference = reference_truth_ratios(model, tokenizer, scored, forget_split=req.forget,
                                       model_name=source, max_length=EVAL_MAX_LENGTH)
    return reference, {configs.forget_perturbed: rows}


def evaluate_model(req: EvalRequest) -> tuple[dict[str, Any], str]:
    """Evaluate ``req.model`` on ``req.benchmark``; returns ``(record, table)``.

    ``record`` is ``{"model", "label", "benchmark", "reference", "summary", "result"}`` (the
    JSON report; ``result`` is :func:`fastngd.eval.evaluate_benchmark`'s, ``reference`` the
    retain-only model or file forget quality compared with, or None). ``table`` is the
    printed summary: for TOFU-style data the NGDiff paper's Table 1 row, TOFU's and
    open-unlearning's metrics, the model-utility components
    (:func:`fastngd.reproduce.tofu.summarise_tofu`; ``max_new_tokens`` defaults to
    :data:`EVAL_MAX_NEW_TOKENS`) and, with ``retain_split``, the scores of that whole split;
    the MUSE aggregate otherwise. Only the splits the protocol scores are read (a missing
    optional one is a warning, its metrics left out). A UsageError (naming the flags of
    ``fastngd eval``) for a ``forget`` split the benchmark does not have or a
    ``max_new_tokens``/``max_examples`` below 1.
    """
    from fastngd.data.loading import QA_BENCHMARKS, tofu_configs
    from fastngd.errors import UsageError
    from fastngd.eval import evaluate_benchmark
    from fastngd.models.target import load_target_model
    from fastngd.reproduce.tables import metrics_table, retain_split_table, tofu_tables

    label = req.label or model_label(req.model, req.benchmark)
    qa = req.benchmark in QA_BENCHMARKS
    for flag, value in (("--max-new-tokens", req.max_new_tokens),
                        ("--max-examples", req.max_examples)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if qa:
        tofu_configs(req.forget, req.benchmark)
    reference, read = _reference(req) if qa else (None, {})
    loaded, tokenizer, source = load_target_model(
        req.model, benchmark=req.benchmark, seed=req.seed, device=req.device, dtype=req.dtype,
        cache_dir=req.cache_dir, data_dir=req.data_dir)
    options: dict[str, Any] = {"max_examples": req.max_examples}
    if qa:
        options.update(forget_split=req.forget, retain_split=req.retain_split,
                       reference=reference,
                       max_new_tokens=(EVAL_MAX_NEW_TOKENS if req.max_new_tokens is None
                                       else req.max_new_tokens),
                       max_length=EVAL_MAX_LENGTH, loaded=read)
    result = evaluate_benchmark(loaded, tokenizer, req.benchmark, data_dir=req.data_dir,
                                seed=req.seed, **options)
    if qa:
        from fastngd.reproduce.tofu import summarise_tofu

        summary = summarise_tofu(result)
        table = tofu_tables({"no_unlearn": summary, "methods": {}}, label)
        whole = retain_split_table(result, label)
        if whole:
            table += "\n\n" + whole
    else:
        summary = dict(result["aggregate"])
        table = metrics_table(summary, label)
    ref_name = None
    if reference is not None:
        ref_name = req.reference_file or reference.model
    record = {"model": source, "label": label, "benchmark": req.benchmark,
              "reference": ref_name, "summary": summary, "result": result}
    return record, table

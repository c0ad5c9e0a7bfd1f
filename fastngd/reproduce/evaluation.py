"""``fastngd eval``: one model, the TOFU protocol (QA benchmarks) or the MUSE protocol."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["evaluate_model"]


def evaluate_model(
    model: str | None,
    *,
    benchmark: str,
    forget: str = "forget10",
    data_dir: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    cache_dir: str | None = None,
    max_new_tokens: int | None = None,
    max_examples: int | None = None,
) -> tuple[dict[str, Any], str]:
    """Evaluate ``--model`` on ``benchmark``; returns ``(record, table)``.

    ``record`` is ``{"model", "benchmark", "summary", "result"}`` (the JSON report);
    ``table`` the printed summary: the NGDiff paper's Table 1 row for TOFU-style data
    (:func:`fastngd.reproduce.tofu.summarise_tofu` of :func:`fastngd.eval.evaluate_tofu`;
    ``max_new_tokens`` defaults to 200), the MUSE aggregate otherwise. Only the configs
    the protocol scores are read (a missing optional TOFU config is a warning).
    """
    from fastngd.data.loading import QA_BENCHMARKS, load_qa_eval_data, load_text_eval_data
    from fastngd.models.target import load_target_model
    from fastngd.reproduce.tables import method_table, metrics_table

    loaded, tokenizer, source = load_target_model(
        model, benchmark=benchmark, seed=seed, device=device, dtype=dtype, cache_dir=cache_dir)
    if benchmark in QA_BENCHMARKS:
        from fastngd.eval import evaluate_tofu
        from fastngd.reproduce.tofu import summarise_tofu, tofu_eval_data

        data = tofu_eval_data(load_qa_eval_data(benchmark, forget, data_dir=data_dir, seed=seed),
                              forget)
        result = evaluate_tofu(loaded, tokenizer, data, forget_split=forget,
                               max_new_tokens=max_new_tokens or 200, max_examples=max_examples)
        summary = summarise_tofu(result)
        table = method_table({"no_unlearn": summary, "methods": {}},
                             base_label=Path(source).name or source)
    else:
        from fastngd.eval import evaluate_muse

        data = load_text_eval_data(benchmark, data_dir=data_dir, seed=seed)
        result = evaluate_muse(loaded, tokenizer, data, max_examples=max_examples)
        summary = dict(result["aggregate"])
        table = metrics_table(summary)
    return {"model": source, "benchmark": benchmark, "summary": summary, "result": result}, table

"""The TOFU evaluation protocol (and the NGDiff paper's table metrics) on QA splits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fastngd.data.tokenize import format_chat_prompt, format_prompt
from fastngd.eval._rows import column, list_column, take
from fastngd.eval.generation import generate
from fastngd.eval.memorisation import fact_accuracy, split_continuation
from fastngd.eval.probability import answer_probability
from fastngd.eval.rouge import rouge_l_recall
from fastngd.eval.summary import forget_quality, model_utility
from fastngd.eval.truth_ratio import truth_ratios

__all__ = ["TOFU_RETAIN_SPLITS", "evaluate_tofu"]

#: Retain-type configs scored by :func:`evaluate_tofu` when present: config → result key.
TOFU_RETAIN_SPLITS: dict[str, str] = {
    "retain_perturbed": "retain",
    "real_authors_perturbed": "real_authors",
    "world_facts_perturbed": "world_facts",
}


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def _prompts(
    tokenizer: PreTrainedTokenizerBase, questions: list[str], chat_template: bool
) -> list[str]:
    if chat_template:
        return [format_chat_prompt(tokenizer, q) for q in questions]
    return [format_prompt(q) for q in questions]


def _evaluate_split(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    kind: str,
    batch_size: int,
    max_new_tokens: int,
    max_length: int,
    chat_template: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    questions = column(name, rows, "question")
    answers = column(name, rows, "answer")
    prompts = _prompts(tokenizer, questions, chat_template)
    gen_kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "add_special_tokens": not chat_template,
    }
    prob_kwargs: dict[str, Any] = {
        "batch_size": batch_size,
        "max_length": max_length,
        "chat_template": chat_template,
    }
    generations = generate(model, tokenizer, prompts, **gen_kwargs)
    rouge = rouge_l_recall(generations, answers)
    prob = answer_probability(model, tokenizer, questions, answers, **prob_kwargs)
    has_facts = all("fact" in row for row in rows)
    facts = column(name, rows, "fact") if has_facts else None
    fact_ok = fact_accuracy(generations, facts) if facts is not None else None
    has_perturbed = all("paraphrased_answer" in r and "perturbed_answer" in r for r in rows)
    trs: list[float] | None = None
    p_para: list[float] | None = None
    p_wrong: list[list[float]] | None = None
    if has_perturbed:
        paraphrased = column(name, rows, "paraphrased_answer")
        perturbed = list_column(name, rows, "perturbed_answer")
        p_para = answer_probability(model, tokenizer, questions, paraphrased, **prob_kwargs)
        flat_q = [q for q, wrong in zip(questions, perturbed) for _ in wrong]
        flat_a = [a for wrong in perturbed for a in wrong]
        flat_p = answer_probability(model, tokenizer, flat_q, flat_a, **prob_kwargs)
        p_wrong, start = [], 0
        for wrong in perturbed:
            p_wrong.append(flat_p[start : start + len(wrong)])
            start += len(wrong)
        trs = truth_ratios(p_para, p_wrong)
    per_example: list[dict[str, Any]] = []
    for i in range(len(rows)):
        per_example.append(
            {
                "question": questions[i],
                "answer": answers[i],
                "generation": generations[i],
                "rougeL_recall": rouge[i],
                "probability": prob[i],
                "fact_correct": fact_ok[i] if fact_ok is not None else None,
                "paraphrased_probability": p_para[i] if p_para is not None else None,
                "perturbed_probabilities": p_wrong[i] if p_wrong is not None else None,
                "truth_ratio": trs[i] if trs is not None else None,
            }
        )
    truth = None
    if trs is not None:
        if kind == "forget":
            truth = _mean([min(t, 1.0 / t) for t in trs])
        else:
            truth = _mean([max(0.0, 1.0 - t) for t in trs])
    aggregate = {
        "n": len(rows),
        "rougeL_recall": _mean(rouge),
        "probability": _mean(prob),
        "truth_ratio": truth,
        "fact_accuracy": _mean(fact_ok) if fact_ok is not None else None,
    }
    return aggregate, per_example


def _verbmem(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    prefix_fraction: float,
    batch_size: int,
    max_new_tokens: int,
    chat_template: bool,
) -> tuple[float | None, list[dict[str, Any]]]:
    questions = column(name, rows, "question")
    answers = column(name, rows, "answer")
    prompts, refs = [], []
    for question, prompt, answer in zip(
        questions, _prompts(tokenizer, questions, chat_template), answers
    ):
        if len(answer.split()) < 2:
            continue
        prefix, rest = split_continuation(answer, prefix_fraction)
        sep = "" if chat_template else " "
        prompts.append(f"{prompt}{sep}{prefix}")
        refs.append(rest)
    if not prompts:
        return None, []
    continuations = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        add_special_tokens=not chat_template,
    )
    scores = rouge_l_recall(continuations, refs)
    per_example = [
        {"prompt": p, "reference": r, "continuation": c, "rougeL_recall": s}
        for p, r, c, s in zip(prompts, refs, continuations, scores)
    ]
    return _mean(scores), per_example


def evaluate_tofu(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    forget_split: str = "forget10",
    retain_model_truth_ratios: Sequence[float] | None = None,
    batch_size: int = 32,
    max_new_tokens: int = 200,
    max_length: int = 256,
    max_examples: int | None = None,
    prefix_fraction: float = 0.5,
    chat_template: bool = False,
) -> dict[str, Any]:
    """Evaluate ``model`` with the TOFU protocol on ``data`` (config name → rows).

    Splits: ``forget`` = ``data[forget_split + "_perturbed"]`` when present, else
    ``data[forget_split]``; each retain-type config of :data:`TOFU_RETAIN_SPLITS` present in
    ``data`` (``retain``, ``real_authors``, ``world_facts``). Each split is cut to its first
    ``max_examples`` rows. Per split, with greedy generations of ``max_new_tokens`` tokens:

    * ``rougeL_recall``: mean :func:`rouge_l_recall` of generation vs ``answer``;
    * ``probability``: mean :func:`answer_probability` of ``answer``;
    * ``truth_ratio``: from the paraphrased / perturbed answers' probabilities,
      ``mean min(tr, 1/tr)`` on the forget split and ``mean max(0, 1 - tr)`` on retain-type
      splits (None without ``paraphrased_answer``/``perturbed_answer``);
    * ``fact_accuracy``: mean :func:`fact_accuracy` (None without a ``fact`` field).

    Top level: ``model_utility`` = :func:`model_utility` of every non-None probability,
    ROUGE-L recall and truth ratio of the retain-type splits (None when there is none);
    ``forget_quality`` = :func:`forget_quality` of the forget split's per-example truth ratios
    against ``retain_model_truth_ratios`` (the same values, ``per_example["forget"][i]
    ["truth_ratio"]``, of a model trained on the retain set only; None when not given);
    ``seed_paper``: ``verbmem`` (mean ROUGE-L recall of continuations of the forget answers
    cut by :func:`split_continuation` at ``prefix_fraction``, appended to the prompt),
    ``knowmem`` (forget ROUGE-L recall), ``utility`` (``retain`` ROUGE-L recall) and
    ``truth_ratio`` (forget truth ratio).

    Returns ``{"aggregate": {...}, "per_example": {split: [row, ...], "verbmem": [...]}}``,
    plain JSON types only; every key is always present (None when not computable). Raises
    ``KeyError`` naming a missing config or field and ``ValueError`` on an empty split.
    """
    config = f"{forget_split}_perturbed" if f"{forget_split}_perturbed" in data else forget_split
    if config not in data:
        raise KeyError(
            f"evaluate_tofu: neither {forget_split!r} nor {forget_split + '_perturbed'!r} is in "
            f"the data (configs: {sorted(data)})"
        )
    common: dict[str, Any] = {
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "max_length": max_length,
        "chat_template": chat_template,
    }
    aggregate: dict[str, Any] = {}
    per_example: dict[str, Any] = {}
    forget_rows = take(config, data[config], max_examples)
    aggregate["forget"], per_example["forget"] = _evaluate_split(
        model, tokenizer, config, forget_rows, kind="forget", **common
    )
    utility_values: list[float] = []
    for retain_config, key in TOFU_RETAIN_SPLITS.items():
        if retain_config not in data:
            aggregate[key], per_example[key] = None, None
            continue
        rows = take(retain_config, data[retain_config], max_examples)
        aggregate[key], per_example[key] = _evaluate_split(
            model, tokenizer, retain_config, rows, kind="retain", **common
        )
        for metric in ("probability", "rougeL_recall", "truth_ratio"):
            if aggregate[key][metric] is not None:
                utility_values.append(aggregate[key][metric])
    aggregate["model_utility"] = model_utility(utility_values) if utility_values else None
    forget_trs = [row["truth_ratio"] for row in per_example["forget"]]
    if retain_model_truth_ratios is None:
        aggregate["forget_quality"] = None
    elif any(t is None for t in forget_trs):
        raise ValueError(
            f"evaluate_tofu: forget quality needs truth ratios, but split {config!r} has no "
            "paraphrased_answer/perturbed_answer fields"
        )
    else:
        aggregate["forget_quality"] = forget_quality(forget_trs, retain_model_truth_ratios)
    verbmem_value, per_example["verbmem"] = _verbmem(
        model,
        tokenizer,
        config,
        forget_rows,
        prefix_fraction=prefix_fraction,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        chat_template=chat_template,
    )
    aggregate["seed_paper"] = {
        "verbmem": verbmem_value,
        "knowmem": aggregate["forget"]["rougeL_recall"],
        "utility": aggregate["retain"]["rougeL_recall"] if aggregate.get("retain") else None,
        "truth_ratio": aggregate["forget"]["truth_ratio"],
    }
    return {"aggregate": aggregate, "per_example": per_example}

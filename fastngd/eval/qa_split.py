"""Scores of one TOFU-style QA split: generation, probability, truth ratio, memorisation.

Reference implementation: TOFU (``locuslab/tofu``, ``evaluate_util.py`` ``get_all_evals``
and ``aggregate_eval_stat.py`` ``get_model_utility``) and open-unlearning
(``src/evals/metrics/memorization.py``). Everything likelihood-based is computed from mean
token log-probabilities (:mod:`fastngd.eval.token_scores`), so a model that assigns an
answer a probability that underflows to 0 still gets finite truth ratios and scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fastngd.data.tokenize import format_chat_prompt, format_prompt
from fastngd.eval._rows import column, list_column
from fastngd.eval.extraction import exact_memorization, extraction_strength
from fastngd.eval.generation import generate
from fastngd.eval.memorisation import fact_accuracy
from fastngd.eval.rouge import rouge_l_recall
from fastngd.eval.token_scores import TokenScores, qa_token_scores
from fastngd.eval.truth_ratio import log_truth_ratios, truth_ratio_from_logs

__all__ = ["QASplitSpec", "normalised_probability", "score_qa_split", "truth_ratio_logprobs"]

_MAX_EXP = math.log(1.7976931348623157e308)


@dataclass(frozen=True)
class QASplitSpec:
    """How TOFU scores a split.

    ``kind``: ``"forget"`` (truth ratio ``mean min(tr, 1/tr)``) or ``"retain"``
    (``mean max(0, 1 − tr)``). ``base``: the field of the truth ratio's correct answer,
    ``"paraphrased_answer"`` on the forget and retain sets, ``"answer"`` on real authors and
    world facts. ``normalise``: the split's probability is normalised over the answer
    options (real authors, world facts).
    """

    kind: Literal["forget", "retain"] = "retain"
    base: str = "paraphrased_answer"
    normalise: bool = False


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def _exp_or_none(x: float) -> float | None:
    """``exp(x)``, or None when it exceeds the float range (the log is reported instead)."""
    return math.exp(x) if x < _MAX_EXP else None


def normalised_probability(logp_answer: float, logp_options: Sequence[float]) -> float:
    """``P(a) / (P(a) + Σ_k P(w_k))`` from length-normalised log-probabilities, computed as
    ``1 / (1 + Σ_k exp(lp_k − lp_a))`` (TOFU ``get_model_utility`` on real authors and world
    facts; open-unlearning ``probability_w_options``, which adds 1e-10 to the denominator).
    Finite and in [0, 1] for finite inputs, even when every ``exp(lp)`` underflows."""
    peak = max([logp_answer, *logp_options])
    total = sum(math.exp(v - peak) for v in [logp_answer, *logp_options])
    return math.exp(logp_answer - peak) / total


def _prompts(
    tokenizer: PreTrainedTokenizerBase, questions: list[str], chat_template: bool
) -> list[str]:
    if chat_template:
        return [format_chat_prompt(tokenizer, q) for q in questions]
    return [format_prompt(q) for q in questions]


def _has_truth_ratio_fields(rows: Sequence[Mapping[str, Any]], spec: QASplitSpec) -> bool:
    return all("perturbed_answer" in r and spec.base in r for r in rows)


def truth_ratio_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    rows: Sequence[Mapping[str, Any]],
    spec: QASplitSpec,
    *,
    answer_logps: Sequence[float] | None = None,
    batch_size: int = 32,
    max_length: int = 256,
    chat_template: bool = False,
) -> tuple[list[float], list[list[float]]]:
    """``(base, perturbed)`` mean token log-probabilities per example of split ``name``:
    the inputs of :func:`fastngd.eval.log_truth_ratios` (forward passes only).

    The base answer is the field ``spec.base`` (``answer_logps`` are reused when the base is
    the answer itself and they are given). Raises ``KeyError``/``TypeError`` naming a
    missing or malformed field.
    """
    prob_kwargs: dict[str, Any] = {
        "batch_size": batch_size,
        "max_length": max_length,
        "chat_template": chat_template,
    }
    questions = column(name, rows, "question")
    perturbed = list_column(name, rows, "perturbed_answer")
    if spec.base == "answer" and answer_logps is not None:
        base = list(answer_logps)
    else:
        texts = column(name, rows, spec.base)
        base = [
            s.mean_logprob()
            for s in qa_token_scores(model, tokenizer, questions, texts, **prob_kwargs)
        ]
    flat_q = [q for q, wrong in zip(questions, perturbed) for _ in wrong]
    flat_a = [a for wrong in perturbed for a in wrong]
    flat = [
        s.mean_logprob() for s in qa_token_scores(model, tokenizer, flat_q, flat_a, **prob_kwargs)
    ]
    wrong_logps, start = [], 0
    for wrong in perturbed:
        wrong_logps.append(flat[start : start + len(wrong)])
        start += len(wrong)
    return base, wrong_logps


def _generation_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    rows: Sequence[Mapping[str, Any]],
    max_new_tokens: int,
    batch_size: int,
    chat_template: bool,
) -> tuple[list[str], list[float], list[float] | None]:
    """Greedy answers, their ROUGE-L recall, and fact accuracy (None without ``fact``)."""
    questions = column(name, rows, "question")
    generations = generate(
        model,
        tokenizer,
        _prompts(tokenizer, questions, chat_template),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        add_special_tokens=not chat_template,
    )
    rouge = rouge_l_recall(generations, column(name, rows, "answer"))
    if not all("fact" in r for r in rows):
        return generations, rouge, None
    return generations, rouge, fact_accuracy(generations, column(name, rows, "fact"))


def score_qa_split(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    rows: Sequence[Mapping[str, Any]],
    spec: QASplitSpec,
    *,
    batch_size: int,
    max_new_tokens: int,
    max_length: int,
    chat_template: bool,
    distribution: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[TokenScores]]:
    """Score the QA ``rows`` of split ``name`` the TOFU way (see the module docstring).

    Per example: greedy generation (``max_new_tokens``) and its ROUGE-L recall against the
    answer; the answer's length-normalised probability ``exp(mean log p)``
    (``answer_probability``); ``probability``, that value or, with ``spec.normalise``, the
    option-normalised one (:func:`normalised_probability`); fact accuracy (with a ``fact``
    field); exact memorization and extraction strength of the answer tokens; with
    ``perturbed_answer`` and the base field, the log truth ratio and the truth ratio.
    Returns ``(aggregate, per_example, answer token scores)``; the aggregate holds the means
    (``truth_ratio`` of ``spec.kind``) and None for what the rows cannot give.
    ``distribution=True`` also computes the moments Min-K%++ needs.
    """
    questions = column(name, rows, "question")
    answers = column(name, rows, "answer")
    prob_kwargs: dict[str, Any] = {
        "batch_size": batch_size,
        "max_length": max_length,
        "chat_template": chat_template,
    }
    generations, rouge, fact_ok = _generation_scores(
        model, tokenizer, name, rows, max_new_tokens, batch_size, chat_template
    )
    scores = qa_token_scores(
        model, tokenizer, questions, answers, distribution=distribution, **prob_kwargs
    )
    answer_logps = [s.mean_logprob() for s in scores]
    none: list[Any] = [None] * len(rows)
    base, wrong, log_trs = none, none, none
    has_truth_ratio = _has_truth_ratio_fields(rows, spec)
    if has_truth_ratio:
        base, wrong = truth_ratio_logprobs(
            model, tokenizer, name, rows, spec, answer_logps=answer_logps, **prob_kwargs
        )
        log_trs = log_truth_ratios(base, wrong)
    plain = [math.exp(v) for v in answer_logps]
    probability = plain
    if spec.normalise and has_truth_ratio:
        probability = [normalised_probability(a, w) for a, w in zip(answer_logps, wrong)]
    columns: dict[str, list[Any]] = {
        "question": questions,
        "answer": answers,
        "generation": generations,
        "rougeL_recall": rouge,
        "probability": probability,
        "answer_probability": plain,
        "fact_correct": fact_ok or none,
        "paraphrased_probability": [None if v is None else math.exp(v) for v in base],
        "perturbed_probabilities": [None if w is None else [math.exp(v) for v in w] for w in wrong],
        "log_truth_ratio": log_trs,
        "truth_ratio": [None if v is None else _exp_or_none(v) for v in log_trs],
        "exact_memorization": [exact_memorization(s.content().correct) for s in scores],
        "extraction_strength": [extraction_strength(s.content().correct) for s in scores],
    }
    per_example = [dict(zip(columns, values)) for values in zip(*columns.values())]
    aggregate = {
        "n": len(rows),
        "rougeL_recall": _mean(rouge),
        "probability": _mean(probability),
        "answer_probability": _mean(plain),
        "truth_ratio": truth_ratio_from_logs(log_trs, spec.kind) if has_truth_ratio else None,
        "fact_accuracy": _mean(fact_ok) if fact_ok is not None else None,
        "exact_memorization": _mean(columns["exact_memorization"]),
        "extraction_strength": _mean(columns["extraction_strength"]),
    }
    return aggregate, per_example, scores

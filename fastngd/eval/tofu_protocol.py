"""The TOFU evaluation protocol, open-unlearning's extra metrics, and the NGDiff paper's
table metrics, on QA splits.

Reference implementation: TOFU (``locuslab/tofu``: ``evaluate_util.py``,
``aggregate_eval_stat.py``, ``config/eval_everything.yaml``) and open-unlearning
(``locuslab/open-unlearning``: ``configs/eval/tofu.yaml`` and ``tofu_metrics/``,
``src/evals/metrics/``). The result layout is documented in ``docs/eval_layout.md``.

What :func:`evaluate_tofu` scores. Splits (each cut to its first ``max_examples`` rows):
``forget`` = ``data[forget_split + "_perturbed"]`` when present, else
``data[forget_split]``; the retain-type configs of :data:`TOFU_RETAIN_SPLITS` present in
``data`` (``retain``, ``real_authors``, ``world_facts``); ``retain_split`` (e.g.
``"retain90"``: the whole retain set, generation and probability only); the holdout config
(``holdout_split``, default :func:`holdout_split_for` of the forget split) when present.
Each split is scored by :func:`fastngd.eval.score_qa_split` (greedy generations of
``max_new_tokens`` tokens, ROUGE-L recall, probability, truth ratio in log space, fact
accuracy, exact memorization and extraction strength).

Top level: ``model_utility`` (harmonic mean of the 9 ``model_utility_components``
{retain, real_authors, world_facts} × {probability, rouge_l_recall, truth_ratio}, with the
option-normalised probability and the answer-vs-perturbed truth ratio on real authors and
world facts; ``model_utility_zero_components`` names those equal to 0); ``forget_quality``
(KS p-value of the forget split's truth ratios against a model trained on the retain set
only: ``reference`` is a :class:`fastngd.eval.ReferenceTruthRatios`, a mapping with
``questions`` and ``log_truth_ratios``, or that model's ``evaluate_tofu`` result, and must
cover the same questions; ``retain_model_truth_ratios`` gives bare truth ratios instead;
None without either); ``extraction_strength`` and ``exact_memorization`` of the forget
split; ``mia``: the AUCs of the ``loss``, ``zlib``, ``min_k`` and ``min_k_plus_plus``
attacks (``k``) on the forget vs holdout answers and ``privleak`` (MUSE's sign,
``ref_auc``), None without a holdout config; ``seed_paper``: the NGDiff paper's ``verbmem``
(continuations of the forget answers cut at ``prefix_fraction``), ``knowmem``, ``utility``
and ``truth_ratio``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fastngd.data.tokenize import format_chat_prompt, format_prompt
from fastngd.errors import InputError
from fastngd.eval._rows import column, take
from fastngd.eval.generation import generate
from fastngd.eval.memorisation import split_continuation
from fastngd.eval.mia import MIA_ATTACKS, membership_scores, mia_aucs
from fastngd.eval.muse import SYNTHETIC_RETRAIN_AUC, privleak_from_auc
from fastngd.eval.qa_split import QASplitSpec, score_qa_split
from fastngd.eval.reference import (
    ReferenceTruthRatios,
    check_reference_questions,
    forget_quality_against,
    resolve_reference,
)
from fastngd.eval.rouge import rouge_l_recall
from fastngd.eval.summary import MODEL_UTILITY_COMPONENTS, model_utility, zero_components
from fastngd.eval.token_scores import qa_token_scores

__all__ = ["TOFU_RETAIN_SPLITS", "evaluate_tofu", "holdout_split_for"]

#: Retain-type configs scored by :func:`evaluate_tofu` when present: config → result key.
TOFU_RETAIN_SPLITS: dict[str, str] = {
    "retain_perturbed": "retain",
    "real_authors_perturbed": "real_authors",
    "world_facts_perturbed": "world_facts",
}

#: How TOFU scores each retain-type split (``config/eval_everything.yaml``: the truth
#: ratio's base answer is the paraphrase on the retain set, the answer itself elsewhere).
_UTILITY_SPECS: dict[str, QASplitSpec] = {
    "retain": QASplitSpec("retain", "paraphrased_answer", normalise=False),
    "real_authors": QASplitSpec("retain", "answer", normalise=True),
    "world_facts": QASplitSpec("retain", "answer", normalise=True),
}

_COMPONENT_METRICS = {
    "probability": "probability",
    "rouge_l_recall": "rougeL_recall",
    "truth_ratio": "truth_ratio",
}


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def holdout_split_for(forget_split: str) -> str:
    """The TOFU holdout config matching a forget split: ``forgetXX`` → ``holdoutXX``."""
    suffix = forget_split.removeprefix("forget")
    return f"holdout{suffix}" if suffix.isdigit() else "holdout10"


def _seed_paper(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    aggregate: Mapping[str, Any],
    forget_rows: Sequence[Mapping[str, Any]],
    prefix_fraction: float,
    common: Mapping[str, Any],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The NGDiff paper's table metrics; Verbmem is the ROUGE-L recall of continuations of
    the forget answers cut at ``prefix_fraction`` (after the question's prompt)."""
    chat_template = common["chat_template"]
    prompts, refs = [], []
    for row in forget_rows:
        if len(row["answer"].split()) < 2:
            continue
        prefix, rest = split_continuation(row["answer"], prefix_fraction)
        sep = "" if chat_template else " "
        prompts.append(f"{_prompt(tokenizer, row['question'], chat_template)}{sep}{prefix}")
        refs.append(rest)
    verbmem, per_example = None, []
    if prompts:
        continuations = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=common["max_new_tokens"],
            batch_size=common["batch_size"],
            add_special_tokens=not chat_template,
        )
        scores = rouge_l_recall(continuations, refs)
        per_example = [
            {"prompt": p, "reference": r, "continuation": c, "rougeL_recall": s}
            for p, r, c, s in zip(prompts, refs, continuations, scores)
        ]
        verbmem = _mean(scores)
    retain = aggregate.get("retain")
    table = {
        "verbmem": verbmem,
        "knowmem": aggregate["forget"]["rougeL_recall"],
        "utility": retain["rougeL_recall"] if retain else None,
        "truth_ratio": aggregate["forget"]["truth_ratio"],
    }
    return table, per_example


def _prompt(tokenizer: PreTrainedTokenizerBase, question: str, chat_template: bool) -> str:
    return format_chat_prompt(tokenizer, question) if chat_template else format_prompt(question)


def _utility(aggregate: Mapping[str, Any]) -> dict[str, Any]:
    """The 9 model-utility components, their harmonic mean and the components equal to 0.

    The mean is over the components present (None when none is); a split or metric the
    data cannot give (no perturbed answers, a missing config) is None in the components.
    """
    components: dict[str, float | None] = {}
    for key in _UTILITY_SPECS:
        split_agg = aggregate.get(key)
        for short, field in _COMPONENT_METRICS.items():
            components[f"{key}_{short}"] = split_agg[field] if split_agg else None
    assert tuple(components) == MODEL_UTILITY_COMPONENTS
    present = [v for v in components.values() if v is not None]
    return {
        "model_utility": model_utility(present) if present else None,
        "model_utility_components": components,
        "model_utility_zero_components": zero_components(components),
    }


def _membership(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_scores: Sequence[Any],
    forget_rows: Sequence[Mapping[str, Any]],
    holdout_name: str,
    holdout_rows: Sequence[Mapping[str, Any]] | None,
    *,
    k: float,
    ref_auc: float,
    prob_kwargs: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """MIA AUCs (forget vs holdout answers) and PrivLeak; all None without holdout rows."""
    if holdout_rows is None:
        none = {"mia": None, "privleak": None}
        return none, {"mia_forget": None, "mia_holdout": None}
    questions = column(holdout_name, holdout_rows, "question")
    answers = column(holdout_name, holdout_rows, "answer")
    holdout_scores = qa_token_scores(
        model, tokenizer, questions, answers, distribution=True, **prob_kwargs
    )
    forget = membership_scores(forget_scores, [row["answer"] for row in forget_rows], k=k)
    holdout = membership_scores(holdout_scores, answers, k=k)
    aucs = mia_aucs(forget, holdout)
    per_example = {
        "mia_forget": [
            {"question": row["question"], **{name: forget[name][i] for name in MIA_ATTACKS}}
            for i, row in enumerate(forget_rows)
        ],
        "mia_holdout": [
            {"question": q, **{name: holdout[name][i] for name in MIA_ATTACKS}}
            for i, q in enumerate(questions)
        ],
    }
    return {"mia": aucs, "privleak": privleak_from_auc(aucs["min_k"], ref_auc)}, per_example


def _forget_quality(
    per_example_forget: list[dict[str, Any]],
    config: str,
    reference: ReferenceTruthRatios | None,
) -> float | None:
    """Forget quality against the reference truth ratios (None without a reference)."""
    if reference is None:
        return None
    if any(row["log_truth_ratio"] is None for row in per_example_forget):
        raise ValueError(
            f"evaluate_tofu: forget quality needs truth ratios, but split {config!r} has no "
            "paraphrased_answer/perturbed_answer fields"
        )
    return forget_quality_against(per_example_forget, reference)


def _forget_config(data: Mapping[str, Any], forget_split: str) -> str:
    """The config scored as the forget set: ``{forget_split}_perturbed`` when present (it
    adds the answers the truth ratio needs), else ``forget_split``. InputError when both are
    present and do not ask the same questions in the same order."""
    config = f"{forget_split}_perturbed" if f"{forget_split}_perturbed" in data else forget_split
    if config not in data:
        raise KeyError(
            f"evaluate_tofu: neither {forget_split!r} nor {forget_split + '_perturbed'!r} is in "
            f"the data (configs: {sorted(data)})"
        )
    if config != forget_split and forget_split in data:
        mine = [row["question"] for row in data[config]]
        theirs = [row["question"] for row in data[forget_split]]
        if mine != theirs:
            at = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b),
                      min(len(mine), len(theirs)))
            raise InputError(
                f"{config!r} is scored in place of {forget_split!r} and must ask the same "
                f"questions in the same order, but it has {len(mine)} rows against "
                f"{len(theirs)} and differs first at row {at}")
    return config


def _score_splits(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: Mapping[str, Sequence[Mapping[str, Any]]],
    forget_config: str,
    retain_split: str | None,
    max_examples: int | None,
    common: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    """Score the forget split, the retain-type splits present and ``retain_split``;
    returns (aggregate, per_example, the forget answers' token scores)."""
    if retain_split is not None and retain_split not in data:
        raise KeyError(f"evaluate_tofu: retain split {retain_split!r} is not in the data")
    specs: list[tuple[str, str | None, QASplitSpec]] = [
        ("forget", forget_config, QASplitSpec("forget")),
        *((key, cfg, _UTILITY_SPECS[key]) for cfg, key in TOFU_RETAIN_SPLITS.items()),
        ("retain_split", retain_split, _UTILITY_SPECS["retain"]),
    ]
    aggregate: dict[str, Any] = {}
    per_example: dict[str, Any] = {}
    forget_scores: list[Any] = []
    for key, config, spec in specs:
        aggregate[key], per_example[key] = None, None
        if config is None or config not in data:
            continue
        rows = take(config, data[config], max_examples)
        aggregate[key], per_example[key], scores = score_qa_split(
            model, tokenizer, config, rows, spec, distribution=key == "forget", **common
        )
        aggregate[key]["config"] = config
        if key == "forget":
            forget_scores = scores
    return aggregate, per_example, forget_scores


def evaluate_tofu(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    forget_split: str = "forget10",
    retain_model_truth_ratios: Sequence[float] | None = None,
    reference: Any = None,
    retain_split: str | None = None,
    holdout_split: str | None = None,
    batch_size: int = 32,
    max_new_tokens: int = 200,
    max_length: int = 256,
    max_examples: int | None = None,
    prefix_fraction: float = 0.5,
    chat_template: bool = False,
    k: float = 0.4,
    ref_auc: float = SYNTHETIC_RETRAIN_AUC,
) -> dict[str, Any]:
    """Evaluate ``model`` with the TOFU protocol on ``data`` (config name → rows): the
    splits and metrics of the module docstring.

    Returns ``{"protocol": "tofu", "settings", "aggregate", "per_example"}`` with plain JSON
    types and every key always present (None when not computable); see
    ``docs/eval_layout.md``. Raises ``KeyError`` naming a missing config or field,
    ``ValueError`` on an empty split, and :class:`~fastngd.errors.InputError` when the
    reference covers other questions, or ``{forget_split}_perturbed`` (scored in place of
    ``forget_split``) asks other questions than ``forget_split``.
    """
    config = _forget_config(data, forget_split)
    holdout = holdout_split or holdout_split_for(forget_split)
    common: dict[str, Any] = {
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "max_length": max_length,
        "chat_template": chat_template,
    }
    ref = resolve_reference(reference, retain_model_truth_ratios)
    if ref is not None:  # a reference on other questions fails before any scoring
        forget_questions = column(config, take(config, data[config], max_examples), "question")
        check_reference_questions(forget_questions, ref)
    aggregate, per_example, forget_scores = _score_splits(
        model, tokenizer, data, config, retain_split, max_examples, common
    )
    aggregate.update(_utility(aggregate))
    aggregate["forget_quality"] = _forget_quality(per_example["forget"], config, ref)
    aggregate["extraction_strength"] = aggregate["forget"]["extraction_strength"]
    aggregate["exact_memorization"] = aggregate["forget"]["exact_memorization"]
    holdout_rows = take(holdout, data[holdout], max_examples) if holdout in data else None
    prob_kwargs = {key: common[key] for key in ("batch_size", "max_length", "chat_template")}
    mia, mia_rows = _membership(model, tokenizer, forget_scores, per_example["forget"], holdout,
                                holdout_rows, k=k, ref_auc=ref_auc, prob_kwargs=prob_kwargs)
    aggregate.update(mia)
    per_example.update(mia_rows)
    aggregate["seed_paper"], per_example["verbmem"] = _seed_paper(
        model, tokenizer, aggregate, per_example["forget"], prefix_fraction, common
    )
    settings = {"forget_split": forget_split, "forget_config": config,
                "holdout_split": holdout if holdout_rows is not None else None,
                "retain_split": retain_split, "max_new_tokens": max_new_tokens,
                "max_length": max_length, "max_examples": max_examples, "k": k,
                "ref_auc": ref_auc}
    return {"protocol": "tofu", "settings": settings, "aggregate": aggregate,
            "per_example": per_example}

"""The MUSE evaluation protocol (VerbMem, KnowMem, PrivLeak) and open-unlearning's extra
metrics on MUSE data (extraction strength, exact memorization, membership inference).

Reference implementation: MUSE (``swj0419/muse_bench``: ``eval.py``, ``constants.py``,
``metrics/verbmem.py``, ``metrics/knowmem.py``, ``metrics/privleak.py``) and open-unlearning
(``configs/eval/muse.yaml`` and ``muse_metrics/``). The result layout is documented in
``docs/eval_layout.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fastngd.data.optional import MissingDataWarning
from fastngd.eval._rows import column, take
from fastngd.eval.extraction import exact_memorization, extraction_strength
from fastngd.eval.generation import generate
from fastngd.eval.mia import MIA_ATTACKS, membership_scores, mia_aucs
from fastngd.eval.muse import (
    MUSE_KNOWMEM_STOP_STRINGS,
    knowmem_prompt,
    privleak_from_auc,
    retrain_auc,
)
from fastngd.eval.rouge import rouge_l_f1
from fastngd.eval.token_scores import continuation_token_scores, text_token_scores

__all__ = ["evaluate_muse"]

Data = Mapping[str, Mapping[str, Sequence[Mapping[str, Any]] | None]]


def _split(data: Data, config: str, split: str) -> Sequence[Mapping[str, Any]]:
    if config not in data:
        raise KeyError(f"evaluate_muse: config {config!r} is missing (configs: {sorted(data)})")
    rows = data[config].get(split)
    if rows is None:
        raise KeyError(
            f"evaluate_muse: split {split!r} of config {config!r} is missing "
            f"(splits: {sorted(k for k, v in data[config].items() if v is not None)})"
        )
    return rows


def _optional_split(data: Data, config: str, split: str) -> Sequence[Mapping[str, Any]] | None:
    """The rows, or None with a :class:`MissingDataWarning` when absent or empty."""
    rows = data.get(config, {}).get(split)
    if not rows:
        warnings.warn(
            f"evaluate_muse: {config}/{split} is missing; see docs/eval_layout.md for what is "
            "reported without it",
            MissingDataWarning,
            stacklevel=3,
        )
        return None
    return rows


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def _verbmem(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Mapping[str, Any]],
    *,
    max_new_tokens: int,
    batch_size: int,
    max_length: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """VerbMem (MUSE ``metrics/verbmem.py``) and EM/ES of the true continuations."""
    prompts, gts = column("verbmem/forget", rows, "prompt"), column("verbmem/forget", rows, "gt")
    outs = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    # MUSE scores against the gt cut to max_new_tokens tokens (special tokens included)
    shorts = [
        str(
            tokenizer.decode(
                list(tokenizer(gt)["input_ids"])[:max_new_tokens], skip_special_tokens=True
            )
        )
        for gt in gts
    ]
    f1 = rouge_l_f1(outs, shorts, use_stemmer=False)
    scores = continuation_token_scores(
        model, tokenizer, prompts, gts, batch_size=batch_size, max_length=max_length
    )
    em = [exact_memorization(s.correct) for s in scores]
    es = [extraction_strength(s.correct) for s in scores]
    per_example = [
        {
            "prompt": p,
            "gt": g,
            "generation": o,
            "rougeL_f1": s,
            "exact_memorization": m,
            "extraction_strength": e,
        }
        for p, g, o, s, m, e in zip(prompts, shorts, outs, f1, em, es)
    ]
    aggregate = {
        "verbmem_forget": 100.0 * _mean(f1),
        "exact_memorization": _mean(em),
        "extraction_strength": _mean(es),
    }
    return aggregate, per_example


def _knowmem(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: Data,
    split: str,
    *,
    max_examples: int | None,
    max_new_tokens: int,
    batch_size: int,
) -> tuple[float, list[dict[str, Any]], int]:
    """KnowMem of ``knowmem/split`` with MUSE's few-shot prompt; returns the number of
    in-context examples used (0 when ``{split}_icl`` is missing: zero-shot)."""
    name = f"knowmem/{split}"
    rows = take(name, _split(data, "knowmem", split), max_examples)
    questions, answers = column(name, rows, "question"), column(name, rows, "answer")
    icl = _optional_split(data, "knowmem", f"{split}_icl") or []
    column(f"knowmem/{split}_icl", icl, "question")
    column(f"knowmem/{split}_icl", icl, "answer")
    outs = generate(
        model,
        tokenizer,
        [knowmem_prompt(q, icl) for q in questions],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        stop_strings=MUSE_KNOWMEM_STOP_STRINGS,
    )
    f1 = rouge_l_f1(outs, answers, use_stemmer=False)
    per_example = [
        {"question": q, "answer": a, "generation": o, "rougeL_f1": s}
        for q, a, o, s in zip(questions, answers, outs, f1)
    ]
    return 100.0 * _mean(f1), per_example, len(icl)


def _privleak(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: Data,
    *,
    max_examples: int | None,
    batch_size: int,
    max_length: int,
    k: float,
    ref_auc: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Membership scores of privleak/forget vs privleak/holdout, their AUCs and PrivLeak."""
    forget_rows = take("privleak/forget", _split(data, "privleak", "forget"), max_examples)
    holdout = _optional_split(data, "privleak", "holdout")
    if holdout is None:
        empty = {
            key: None
            for key in ("privleak_forget", "privleak_holdout", "mia_forget", "mia_holdout")
        }
        return {"mia_auc": None, "privleak": None, "privleak_auc": None, "mia": None}, empty
    texts = {
        "forget": column("privleak/forget", forget_rows, "text"),
        "holdout": column(
            "privleak/holdout", take("privleak/holdout", holdout, max_examples), "text"
        ),
    }
    scores = {}
    for side, side_texts in texts.items():
        token_scores = text_token_scores(
            model,
            tokenizer,
            side_texts,
            batch_size=batch_size,
            max_length=max_length,
            distribution=True,
        )
        scores[side] = membership_scores(token_scores, side_texts, k=k)
    aucs = mia_aucs(scores["forget"], scores["holdout"])
    per_example: dict[str, Any] = {}
    for side, side_texts in texts.items():
        per_example[f"privleak_{side}"] = [
            {"text": t, "min_k_score": s} for t, s in zip(side_texts, scores[side]["min_k"])
        ]
        per_example[f"mia_{side}"] = [
            {name: scores[side][name][i] for name in MIA_ATTACKS} for i in range(len(side_texts))
        ]
    aggregate = {
        "mia_auc": aucs["min_k"],
        "privleak": privleak_from_auc(aucs["min_k"], ref_auc),
        "privleak_auc": 1.0 - aucs["min_k"],
        "mia": aucs,
    }
    return aggregate, per_example


def evaluate_muse(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: Data,
    *,
    batch_size: int = 32,
    verbmem_max_new_tokens: int = 128,
    knowmem_max_new_tokens: int = 32,
    max_length: int = 2048,
    max_examples: int | None = None,
    k: float = 0.4,
    ref_auc: float | None = None,
    corpus: str | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` with the MUSE protocol on ``data`` (config → split → rows).

    * ``verbmem_forget``: 100 × mean ROUGE-L F1 (no stemming) of the greedy continuation
      (``verbmem_max_new_tokens``, MUSE: 128) of each ``verbmem/forget`` ``prompt`` against
      its ``gt`` cut to that many tokens, as MUSE does;
    * ``knowmem_forget`` / ``knowmem_retain``: 100 × mean ROUGE-L F1 of the greedy answer
      (``knowmem_max_new_tokens``, MUSE: 32, cut at :data:`MUSE_KNOWMEM_STOP_STRINGS`) to
      MUSE's few-shot prompt (:func:`fastngd.eval.knowmem_prompt`) with the examples of
      ``knowmem/forget_qa_icl`` / ``retain_qa_icl``; a missing ``*_icl`` split gives a
      :class:`~fastngd.data.MissingDataWarning` and a zero-shot prompt (the number of
      examples used is in ``settings["knowmem_icl_examples"]``);
    * ``exact_memorization`` / ``extraction_strength``: of the ``gt`` tokens given the
      prompt (open-unlearning's MUSE ES/EM on verbmem data);
    * ``mia``: AUCs of the ``loss``, ``zlib``, ``min_k`` and ``min_k_plus_plus`` attacks
      (``k``) on ``privleak/forget`` vs ``privleak/holdout`` texts (cut to ``max_length``
      tokens); ``mia_auc`` = its ``min_k`` value (memorised → 1); ``privleak_auc`` =
      1 − ``mia_auc``, MUSE's AUC; ``privleak`` = (``privleak_auc`` − ``ref_auc``) /
      ``ref_auc`` × 100 (≈ −100 for a model that memorised the forget texts, ≈ 0 for a
      retrained one), ``ref_auc`` defaulting to :func:`fastngd.eval.retrain_auc` of
      ``corpus`` ("news" 0.4772, "books" 0.5393, None or "synthetic" 0.5). Without
      ``privleak/holdout`` (warning) these are None.

    ``model_utility``, ``model_utility_components`` and ``forget_quality`` are TOFU's and
    always None here. Each split is cut to its first ``max_examples`` rows. Returns
    ``{"protocol": "muse", "settings", "aggregate", "per_example"}`` with plain JSON types.
    Raises ``KeyError`` naming a missing config, split or field and ``ValueError`` on an
    empty split or ``ref_auc`` outside (0, 1].
    """
    ref = retrain_auc(corpus) if ref_auc is None else ref_auc
    if not 0.0 < ref <= 1.0:
        raise ValueError(f"evaluate_muse: ref_auc must be in (0, 1], got {ref}")
    aggregate: dict[str, Any] = {}
    per_example: dict[str, Any] = {}
    rows = take("verbmem/forget", _split(data, "verbmem", "forget"), max_examples)
    verb, per_example["verbmem_forget"] = _verbmem(
        model,
        tokenizer,
        rows,
        max_new_tokens=verbmem_max_new_tokens,
        batch_size=batch_size,
        max_length=max_length,
    )
    aggregate["verbmem_forget"] = verb["verbmem_forget"]
    icl_used: dict[str, int] = {}
    for split, key in (("forget_qa", "knowmem_forget"), ("retain_qa", "knowmem_retain")):
        aggregate[key], per_example[key], icl_used[split] = _knowmem(
            model,
            tokenizer,
            data,
            split,
            max_examples=max_examples,
            max_new_tokens=knowmem_max_new_tokens,
            batch_size=batch_size,
        )
    leak, leak_rows = _privleak(
        model,
        tokenizer,
        data,
        max_examples=max_examples,
        batch_size=batch_size,
        max_length=max_length,
        k=k,
        ref_auc=ref,
    )
    aggregate.update(leak)
    per_example.update(leak_rows)
    aggregate["k"] = k
    aggregate["ref_auc"] = ref
    aggregate["extraction_strength"] = verb["extraction_strength"]
    aggregate["exact_memorization"] = verb["exact_memorization"]
    aggregate.update(
        model_utility=None,
        model_utility_components=None,
        model_utility_zero_components=None,
        forget_quality=None,
    )
    settings = {
        "corpus": corpus,
        "verbmem_max_new_tokens": verbmem_max_new_tokens,
        "knowmem_max_new_tokens": knowmem_max_new_tokens,
        "knowmem_icl_examples": icl_used,
        "max_length": max_length,
        "max_examples": max_examples,
        "k": k,
        "ref_auc": ref,
    }
    return {
        "protocol": "muse",
        "settings": settings,
        "aggregate": aggregate,
        "per_example": per_example,
    }

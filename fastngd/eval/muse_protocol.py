"""The MUSE evaluation protocol: VerbMem, KnowMem and PrivLeak."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fastngd.data.tokenize import format_prompt
from fastngd.eval._rows import column, take
from fastngd.eval.generation import generate
from fastngd.eval.muse import mia_auc, min_k_score
from fastngd.eval.probability import token_logprobs
from fastngd.eval.rouge import rouge_l_f1

__all__ = ["evaluate_muse"]


def _split(
    data: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]], config: str, split: str
) -> Sequence[Mapping[str, Any]]:
    if config not in data:
        raise KeyError(f"evaluate_muse: config {config!r} is missing (configs: {sorted(data)})")
    if split not in data[config]:
        raise KeyError(
            f"evaluate_muse: split {split!r} of config {config!r} is missing "
            f"(splits: {sorted(data[config])})"
        )
    return data[config][split]


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def evaluate_muse(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
    *,
    batch_size: int = 32,
    verbmem_max_new_tokens: int = 128,
    knowmem_max_new_tokens: int = 32,
    max_length: int = 512,
    max_examples: int | None = None,
    k: float = 0.4,
    ref_auc: float = 0.5,
) -> dict[str, Any]:
    """Evaluate ``model`` with the MUSE protocol on ``data`` (config → split → rows).

    * ``verbmem_forget``: 100 × mean ROUGE-L F1 (no stemming, :func:`rouge_l_f1`) of the greedy
      continuation (``verbmem_max_new_tokens``) of each ``verbmem/forget`` ``prompt`` vs ``gt``;
    * ``knowmem_forget`` / ``knowmem_retain``: 100 × mean ROUGE-L F1 of the greedy answer
      (``knowmem_max_new_tokens``) to :func:`fastngd.data.format_prompt` of each question of
      ``knowmem/forget_qa`` / ``knowmem/retain_qa`` vs its ``answer`` (zero-shot);
    * ``mia_auc``: :func:`mia_auc` of the :func:`min_k_score` (fraction ``k``) of the
      ``privleak/forget`` texts (label 0) vs the ``privleak/holdout`` texts (label 1), texts
      cut to ``max_length`` tokens; ``privleak`` = ``(mia_auc - ref_auc) / ref_auc × 100``.

    Each split is cut to its first ``max_examples`` rows. Returns ``{"aggregate": {...},
    "per_example": {"verbmem_forget", "knowmem_forget", "knowmem_retain", "privleak_forget",
    "privleak_holdout": [...]}}`` with plain JSON types. Raises ``KeyError`` naming a missing
    config, split or field and ``ValueError`` on an empty split or ``ref_auc`` outside (0, 1].
    """
    if not 0.0 < ref_auc <= 1.0:
        raise ValueError(f"evaluate_muse: ref_auc must be in (0, 1], got {ref_auc}")
    aggregate: dict[str, Any] = {}
    per_example: dict[str, Any] = {}

    rows = take("verbmem/forget", _split(data, "verbmem", "forget"), max_examples)
    prompts, gts = column("verbmem/forget", rows, "prompt"), column("verbmem/forget", rows, "gt")
    outs = generate(
        model, tokenizer, prompts, max_new_tokens=verbmem_max_new_tokens, batch_size=batch_size
    )
    f1 = rouge_l_f1(outs, gts, use_stemmer=False)
    aggregate["verbmem_forget"] = 100.0 * _mean(f1)
    per_example["verbmem_forget"] = [
        {"prompt": p, "gt": g, "generation": o, "rougeL_f1": s}
        for p, g, o, s in zip(prompts, gts, outs, f1)
    ]

    for split, key in (("forget_qa", "knowmem_forget"), ("retain_qa", "knowmem_retain")):
        name = f"knowmem/{split}"
        rows = take(name, _split(data, "knowmem", split), max_examples)
        questions, answers = column(name, rows, "question"), column(name, rows, "answer")
        outs = generate(
            model,
            tokenizer,
            [format_prompt(q) for q in questions],
            max_new_tokens=knowmem_max_new_tokens,
            batch_size=batch_size,
        )
        f1 = rouge_l_f1(outs, answers, use_stemmer=False)
        aggregate[key] = 100.0 * _mean(f1)
        per_example[key] = [
            {"question": q, "answer": a, "generation": o, "rougeL_f1": s}
            for q, a, o, s in zip(questions, answers, outs, f1)
        ]

    scores: dict[str, list[float]] = {}
    for split in ("forget", "holdout"):
        name = f"privleak/{split}"
        texts = column(name, take(name, _split(data, "privleak", split), max_examples), "text")
        lps = token_logprobs(model, tokenizer, texts, batch_size=batch_size, max_length=max_length)
        scores[split] = [min_k_score(lp, k) for lp in lps]
        per_example[f"privleak_{split}"] = [
            {"text": t, "min_k_score": s} for t, s in zip(texts, scores[split])
        ]
    auc = mia_auc(scores["forget"], scores["holdout"])
    aggregate["mia_auc"] = auc
    aggregate["privleak"] = (auc - ref_auc) / ref_auc * 100.0
    aggregate["k"] = k
    aggregate["ref_auc"] = ref_auc
    return {"aggregate": aggregate, "per_example": per_example}

"""Evaluator: batched greedy generation, the TOFU and MUSE metrics and protocols."""

from fastngd.eval.generation import generate
from fastngd.eval.memorisation import (
    fact_accuracy,
    knowmem,
    normalize_text,
    split_continuation,
    utility,
    verbmem,
)
from fastngd.eval.muse import mia_auc, min_k_score, muse_knowmem, muse_verbmem, privleak
from fastngd.eval.muse_protocol import evaluate_muse
from fastngd.eval.probability import answer_nll, answer_probability, token_logprobs
from fastngd.eval.rouge import rouge_l_f1, rouge_l_recall
from fastngd.eval.summary import forget_quality, model_utility
from fastngd.eval.tofu_protocol import TOFU_RETAIN_SPLITS, evaluate_tofu
from fastngd.eval.truth_ratio import truth_ratio, truth_ratios

__all__ = [
    "TOFU_RETAIN_SPLITS",
    "answer_nll",
    "answer_probability",
    "evaluate_muse",
    "evaluate_tofu",
    "fact_accuracy",
    "forget_quality",
    "generate",
    "knowmem",
    "mia_auc",
    "min_k_score",
    "model_utility",
    "muse_knowmem",
    "muse_verbmem",
    "normalize_text",
    "privleak",
    "rouge_l_f1",
    "rouge_l_recall",
    "split_continuation",
    "token_logprobs",
    "truth_ratio",
    "truth_ratios",
    "utility",
    "verbmem",
]

"""Evaluator: batched greedy generation, the TOFU and MUSE metrics and protocols, and the
open-unlearning metric set (extraction strength, exact memorization, membership inference).

Every result follows one JSON layout for both protocols (``docs/eval_layout.md``).
"""

from fastngd.eval.benchmarks import (
    MUSE_EVAL_SPLITS,
    QA_BENCHMARKS,
    evaluate_benchmark,
    load_muse_eval_data,
    load_tofu_eval_data,
    tofu_eval_configs,
)
from fastngd.eval.extraction import exact_memorization, extraction_strength
from fastngd.eval.generation import generate
from fastngd.eval.memorisation import (
    fact_accuracy,
    knowmem,
    normalize_text,
    split_continuation,
    utility,
    verbmem,
)
from fastngd.eval.mia import (
    MIA_ATTACKS,
    loss_score,
    membership_scores,
    mia_auc,
    mia_aucs,
    min_k_plus_plus_score,
    min_k_score,
    zlib_score,
)
from fastngd.eval.muse import (
    MUSE_KNOWMEM_STOP_STRINGS,
    MUSE_RETRAIN_AUC,
    SYNTHETIC_RETRAIN_AUC,
    cut_at_stop_strings,
    knowmem_prompt,
    muse_knowmem,
    muse_verbmem,
    privleak,
    privleak_from_auc,
    retrain_auc,
)
from fastngd.eval.muse_protocol import evaluate_muse
from fastngd.eval.probability import answer_logprob, answer_nll, answer_probability, token_logprobs
from fastngd.eval.qa_split import (
    QASplitSpec,
    normalised_probability,
    score_qa_split,
    truth_ratio_logprobs,
)
from fastngd.eval.reference import (
    ReferenceTruthRatios,
    forget_quality_against,
    load_reference_truth_ratios,
    reference_from_result,
    reference_truth_ratios,
    save_reference_truth_ratios,
)
from fastngd.eval.rouge import NonLatinTextWarning, rouge_l_f1, rouge_l_recall
from fastngd.eval.summary import (
    MODEL_UTILITY_COMPONENTS,
    forget_quality,
    forget_quality_from_logs,
    model_utility,
    zero_components,
)
from fastngd.eval.tofu_protocol import TOFU_RETAIN_SPLITS, evaluate_tofu, holdout_split_for
from fastngd.eval.token_scores import (
    MIN_LOGPROB,
    TokenScores,
    continuation_token_scores,
    qa_token_scores,
    text_token_scores,
)
from fastngd.eval.truth_ratio import (
    log_truth_ratios,
    truth_ratio,
    truth_ratio_from_logs,
    truth_ratios,
)

__all__ = [
    "MIA_ATTACKS",
    "MIN_LOGPROB",
    "MODEL_UTILITY_COMPONENTS",
    "MUSE_EVAL_SPLITS",
    "MUSE_KNOWMEM_STOP_STRINGS",
    "MUSE_RETRAIN_AUC",
    "QA_BENCHMARKS",
    "SYNTHETIC_RETRAIN_AUC",
    "TOFU_RETAIN_SPLITS",
    "NonLatinTextWarning",
    "QASplitSpec",
    "ReferenceTruthRatios",
    "TokenScores",
    "answer_logprob",
    "answer_nll",
    "answer_probability",
    "continuation_token_scores",
    "cut_at_stop_strings",
    "evaluate_benchmark",
    "evaluate_muse",
    "evaluate_tofu",
    "exact_memorization",
    "extraction_strength",
    "fact_accuracy",
    "forget_quality",
    "forget_quality_against",
    "forget_quality_from_logs",
    "generate",
    "holdout_split_for",
    "knowmem",
    "knowmem_prompt",
    "load_muse_eval_data",
    "load_reference_truth_ratios",
    "load_tofu_eval_data",
    "log_truth_ratios",
    "loss_score",
    "membership_scores",
    "mia_auc",
    "mia_aucs",
    "min_k_plus_plus_score",
    "min_k_score",
    "model_utility",
    "muse_knowmem",
    "muse_verbmem",
    "normalised_probability",
    "normalize_text",
    "privleak",
    "privleak_from_auc",
    "qa_token_scores",
    "reference_from_result",
    "reference_truth_ratios",
    "retrain_auc",
    "rouge_l_f1",
    "rouge_l_recall",
    "save_reference_truth_ratios",
    "score_qa_split",
    "split_continuation",
    "text_token_scores",
    "tofu_eval_configs",
    "token_logprobs",
    "truth_ratio",
    "truth_ratio_from_logs",
    "truth_ratio_logprobs",
    "truth_ratios",
    "utility",
    "verbmem",
    "zero_components",
    "zlib_score",
]

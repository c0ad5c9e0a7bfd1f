"""End-to-end TOFU evaluation: an untrained model scores low, a trained one high."""

from __future__ import annotations

import json

import pytest
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from fastngd.eval import evaluate_tofu

SPLIT_KEYS = {"n", "rougeL_recall", "probability", "truth_ratio", "fact_accuracy"}
EXAMPLE_KEYS = {
    "question",
    "answer",
    "generation",
    "rougeL_recall",
    "probability",
    "fact_correct",
    "paraphrased_probability",
    "perturbed_probabilities",
    "truth_ratio",
}


def test_trained_model_scores_high_untrained_low(
    trained_model: LlamaForCausalLM,
    untrained_model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    tofu_data: dict,
) -> None:
    good = evaluate_tofu(trained_model, tokenizer, tofu_data, max_new_tokens=20)["aggregate"]
    bad = evaluate_tofu(untrained_model, tokenizer, tofu_data, max_new_tokens=20)["aggregate"]
    for split in ("forget", "retain"):
        assert good[split]["rougeL_recall"] == 1.0
        assert good[split]["fact_accuracy"] == 1.0
        assert good[split]["probability"] > 0.5
        assert bad[split]["rougeL_recall"] < 0.3
        assert bad[split]["fact_accuracy"] == 0.0
        assert bad[split]["probability"] < 0.1
    assert good["seed_paper"]["knowmem"] == 1.0 and good["seed_paper"]["utility"] == 1.0
    assert good["seed_paper"]["verbmem"] == 1.0
    assert bad["seed_paper"]["verbmem"] < 0.3
    assert good["model_utility"] > bad["model_utility"]


def test_result_is_plain_json_with_stable_keys(
    trained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, tofu_data: dict
) -> None:
    result = evaluate_tofu(trained_model, tokenizer, tofu_data, max_new_tokens=20, max_examples=3)
    assert json.loads(json.dumps(result)) == result
    agg = result["aggregate"]
    assert set(agg) == {
        "forget",
        "retain",
        "real_authors",
        "world_facts",
        "model_utility",
        "forget_quality",
        "seed_paper",
    }
    assert set(agg["forget"]) == SPLIT_KEYS and set(agg["retain"]) == SPLIT_KEYS
    assert (
        agg["real_authors"] is None and agg["world_facts"] is None and agg["forget_quality"] is None
    )
    assert set(agg["seed_paper"]) == {"verbmem", "knowmem", "utility", "truth_ratio"}
    assert agg["forget"]["n"] == 3 and len(result["per_example"]["forget"]) == 3
    assert set(result["per_example"]["forget"][0]) == EXAMPLE_KEYS
    assert len(result["per_example"]["forget"][0]["perturbed_probabilities"]) == 3


def test_truth_ratio_and_utility_are_consistent_with_per_example_values(
    trained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, tofu_data: dict
) -> None:
    result = evaluate_tofu(trained_model, tokenizer, tofu_data, max_new_tokens=20)
    agg, rows = result["aggregate"], result["per_example"]
    trs = [r["truth_ratio"] for r in rows["forget"]]
    assert agg["forget"]["truth_ratio"] == pytest.approx(sum(min(t, 1 / t) for t in trs) / len(trs))
    rtrs = [r["truth_ratio"] for r in rows["retain"]]
    assert agg["retain"]["truth_ratio"] == pytest.approx(
        sum(max(0.0, 1 - t) for t in rtrs) / len(rtrs)
    )
    values = [agg["retain"][k] for k in ("probability", "rougeL_recall", "truth_ratio")]
    assert agg["model_utility"] == pytest.approx(len(values) / sum(1 / v for v in values))
    # forget quality against the model's own truth ratios: identical samples -> p = 1
    same = evaluate_tofu(
        trained_model, tokenizer, tofu_data, max_new_tokens=20, retain_model_truth_ratios=trs
    )
    assert same["aggregate"]["forget_quality"] == pytest.approx(1.0)


def test_plain_forget_config_without_perturbations(
    trained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    data = {"forget10": [{"question": r["question"], "answer": r["answer"]} for r in qa_rows[:2]]}
    agg = evaluate_tofu(trained_model, tokenizer, data, max_new_tokens=20)["aggregate"]
    assert agg["forget"]["truth_ratio"] is None and agg["forget"]["fact_accuracy"] is None
    assert agg["forget"]["rougeL_recall"] == 1.0
    assert agg["model_utility"] is None and agg["seed_paper"]["utility"] is None
    with pytest.raises(ValueError, match="paraphrased_answer"):
        evaluate_tofu(
            trained_model, tokenizer, data, max_new_tokens=5, retain_model_truth_ratios=[1.0]
        )


def test_bad_data(untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(KeyError, match="forget05"):
        evaluate_tofu(untrained_model, tokenizer, {"forget10": []}, forget_split="forget05")
    with pytest.raises(ValueError, match="'forget10' is empty"):
        evaluate_tofu(untrained_model, tokenizer, {"forget10": []})
    with pytest.raises(KeyError, match="row 0 has no field 'answer'"):
        evaluate_tofu(untrained_model, tokenizer, {"forget10": [{"question": "q"}]})
    with pytest.raises(TypeError, match="field 'answer' must be a str"):
        evaluate_tofu(untrained_model, tokenizer, {"forget10": [{"question": "q", "answer": 3}]})


def test_runs_on_the_embedded_benchmark_configs() -> None:
    from fastngd.data import tofu_synthetic
    from fastngd.models import benchmark_corpus, build_word_tokenizer

    from .conftest import make_model

    tok = build_word_tokenizer(benchmark_corpus("tofu-synthetic", 0)[2])
    result = evaluate_tofu(
        make_model(tok), tok, tofu_synthetic(0), max_new_tokens=4, max_examples=2
    )
    agg = result["aggregate"]
    assert agg["world_facts"]["n"] == 2 and agg["retain"]["n"] == 2 and agg["forget"]["n"] == 2
    assert len(result["per_example"]["world_facts"][0]["perturbed_probabilities"]) == 3
    assert len(result["per_example"]["forget"][0]["perturbed_probabilities"]) == 5
    assert all(v is not None for v in agg["seed_paper"].values())
    # the embedded vocabulary covers every answer the protocol scores
    rows = tofu_synthetic(0)["forget10_perturbed"] + tofu_synthetic(0)["world_facts_perturbed"]
    texts = [t for r in rows for t in (r["answer"], r["paraphrased_answer"], *r["perturbed_answer"])]
    assert all(tok.unk_token_id not in tok(t)["input_ids"] for t in texts)

"""End-to-end TOFU evaluation: an untrained model scores low, a trained one high."""

from __future__ import annotations

import json
import math

import pytest
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from fastngd.errors import InputError
from fastngd.eval import (
    MODEL_UTILITY_COMPONENTS,
    evaluate_tofu,
    forget_quality_against,
    reference_from_result,
)
from fastngd.eval.reference import resolve_reference

SPLIT_KEYS = {
    "n",
    "config",
    "rougeL_recall",
    "probability",
    "answer_probability",
    "truth_ratio",
    "fact_accuracy",
    "exact_memorization",
    "extraction_strength",
}
EXAMPLE_KEYS = {
    "question",
    "answer",
    "generation",
    "rougeL_recall",
    "probability",
    "answer_probability",
    "fact_correct",
    "paraphrased_probability",
    "perturbed_probabilities",
    "truth_ratio",
    "log_truth_ratio",
    "exact_memorization",
    "extraction_strength",
}
AGGREGATE_KEYS = {
    "forget",
    "retain",
    "real_authors",
    "world_facts",
    "retain_split",
    "model_utility",
    "model_utility_components",
    "model_utility_zero_components",
    "forget_quality",
    "extraction_strength",
    "exact_memorization",
    "mia",
    "privleak",
    "seed_paper",
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
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert set(result) == {"protocol", "settings", "aggregate", "per_example"}
    assert result["protocol"] == "tofu"
    agg = result["aggregate"]
    assert set(agg) == AGGREGATE_KEYS
    assert set(agg["forget"]) == SPLIT_KEYS and set(agg["retain"]) == SPLIT_KEYS
    assert agg["real_authors"] is None and agg["world_facts"] is None
    assert agg["forget_quality"] is None and agg["retain_split"] is None
    assert agg["mia"] is None and agg["privleak"] is None  # no holdout config in the data
    assert tuple(agg["model_utility_components"]) == MODEL_UTILITY_COMPONENTS
    assert agg["model_utility_components"]["real_authors_probability"] is None
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
    components = agg["model_utility_components"]
    assert [
        components[f"retain_{k}"] for k in ("probability", "rouge_l_recall", "truth_ratio")
    ] == values
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


def test_a_perturbed_forget_config_must_ask_the_forget_questions(
    untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    """``forget10_perturbed`` is scored in place of ``forget10``: other questions (e.g. retain
    rows put there by mistake), fewer rows or another order are refused before any scoring."""
    forget = [{"question": r["question"], "answer": r["answer"]} for r in qa_rows[:3]]
    perturbed = [{**r, "paraphrased_answer": r["answer"], "perturbed_answer": ["x y"]}
                 for r in forget]
    for bad, at in [(perturbed[::-1], "0"), (perturbed[:2], "2"),
                    ([perturbed[0], {**perturbed[1], "question": "Another?"}, perturbed[2]], "1")]:
        with pytest.raises(InputError, match=rf"'forget10_perturbed' is scored in place of "
                                             rf"'forget10'.*differs first at row {at}"):
            evaluate_tofu(untrained_model, tokenizer,
                          {"forget10": forget, "forget10_perturbed": bad}, max_new_tokens=2)
    agg = evaluate_tofu(untrained_model, tokenizer,
                        {"forget10": forget, "forget10_perturbed": perturbed},
                        max_new_tokens=2)["aggregate"]
    assert agg["forget"]["n"] == 3 and agg["forget"]["config"] == "forget10_perturbed"


def test_runs_on_the_embedded_benchmark_configs() -> None:
    from fastngd.data import tofu_synthetic
    from fastngd.models import benchmark_corpus, build_word_tokenizer

    from .conftest import make_model

    tok = build_word_tokenizer(benchmark_corpus("tofu-synthetic", 0)[2])
    result = evaluate_tofu(
        make_model(tok),
        tok,
        tofu_synthetic(0),
        max_new_tokens=4,
        max_examples=2,
        retain_split="retain90",
    )
    agg = result["aggregate"]
    for key in ("forget", "retain", "real_authors", "world_facts", "retain_split"):
        assert agg[key]["n"] == 2
    assert (
        agg["retain_split"]["config"] == "retain90" and agg["retain_split"]["truth_ratio"] is None
    )
    assert len(result["per_example"]["world_facts"][0]["perturbed_probabilities"]) == 3
    assert len(result["per_example"]["real_authors"][0]["perturbed_probabilities"]) == 3
    assert len(result["per_example"]["forget"][0]["perturbed_probabilities"]) == 5
    assert all(v is not None for v in agg["seed_paper"].values())
    assert all(v is not None for v in agg["model_utility_components"].values())
    assert set(agg["mia"]) == {"loss", "zlib", "min_k", "min_k_plus_plus"}  # holdout10 found
    assert result["settings"]["holdout_split"] == "holdout10"
    assert len(result["per_example"]["mia_holdout"]) == 2
    # the embedded vocabulary covers every answer the protocol scores
    data = tofu_synthetic(0)
    rows = (
        data["forget10_perturbed"] + data["world_facts_perturbed"] + data["real_authors_perturbed"]
    )
    texts = [
        t
        for r in rows
        for t in (r["answer"], r.get("paraphrased_answer", ""), *r["perturbed_answer"])
    ]
    assert all(tok.unk_token_id not in tok(t)["input_ids"] for t in texts)


def _with_holdout(qa_rows: list[dict]) -> dict:
    """Forget the first 2 people, retain the last 2, and 2 people the model never saw."""
    holdout = [
        {
            "question": "What colour does Emo Tarn like?",
            "answer": "Emo Tarn likes the colour ochre.",
        },
        {
            "question": "Where was Fey Lusk born?",
            "answer": "Fey Lusk was born in the town of Zell.",
        },
    ]
    return {
        "forget10_perturbed": qa_rows[:4],
        "retain_perturbed": qa_rows[4:],
        "holdout10": holdout,
    }


def test_memorised_forget_set_is_detected_by_every_attack(
    trained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    result = evaluate_tofu(trained_model, tokenizer, _with_holdout(qa_rows), max_new_tokens=16)
    agg = result["aggregate"]
    assert agg["mia"] == {"loss": 1.0, "zlib": 1.0, "min_k": 1.0, "min_k_plus_plus": 1.0}
    assert agg["privleak"] == pytest.approx(-100.0)  # MUSE's sign: memorised -> -100
    assert agg["extraction_strength"] == 1.0 and agg["exact_memorization"] == 1.0
    rows = result["per_example"]["mia_forget"]
    assert [r["question"] for r in rows] == [r["question"] for r in qa_rows[:4]]


def test_forget_quality_against_a_reference_model(
    trained_model: LlamaForCausalLM,
    untrained_model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    tofu_data: dict,
) -> None:
    ref_result = evaluate_tofu(untrained_model, tokenizer, tofu_data, max_new_tokens=2)
    # the reference itself: identical truth ratios, p = 1
    same = evaluate_tofu(
        untrained_model, tokenizer, tofu_data, max_new_tokens=2, reference=ref_result
    )
    assert same["aggregate"]["forget_quality"] == pytest.approx(1.0)
    # a saved reference (questions + log truth ratios) gives the same value as the result
    ref = reference_from_result(ref_result)
    trained = evaluate_tofu(trained_model, tokenizer, tofu_data, max_new_tokens=2, reference=ref)
    fq = trained["aggregate"]["forget_quality"]
    assert 0.0 < fq < 1.0
    saved = resolve_reference(ref.to_json())
    assert saved == ref and forget_quality_against(trained["per_example"]["forget"], saved) == fq
    # a reference computed on other questions is refused with one clear line
    other = dict(tofu_data, forget10_perturbed=tofu_data["retain_perturbed"])
    with pytest.raises(InputError, match="reference truth ratios are for other questions: 4 of"):
        evaluate_tofu(trained_model, tokenizer, other, max_new_tokens=2, reference=ref)
    with pytest.raises(ValueError, match="either reference or retain_model_truth_ratios"):
        evaluate_tofu(
            trained_model,
            tokenizer,
            tofu_data,
            max_new_tokens=2,
            reference=ref,
            retain_model_truth_ratios=[1.0],
        )


def test_probabilities_that_underflow_give_finite_results(
    trained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    """A strongly unlearned model: answer probabilities exp(-NLL) are 0.0 in floating point."""

    def sharpen(module, args, output):
        return output * 3000.0

    handle = trained_model.lm_head.register_forward_hook(sharpen)
    try:
        result = evaluate_tofu(trained_model, tokenizer, _with_holdout(qa_rows), max_new_tokens=4)
    finally:
        handle.remove()
    text = json.dumps(result, allow_nan=False)  # raises on NaN or infinity
    assert "NaN" not in text
    agg, rows = result["aggregate"], result["per_example"]["forget"]
    assert any(p == 0.0 for r in rows for p in r["perturbed_probabilities"])  # underflowed
    assert all(math.isfinite(r["log_truth_ratio"]) for r in rows)
    assert 0.0 <= agg["forget"]["truth_ratio"] <= 1.0 and 0.0 <= agg["retain"]["truth_ratio"] <= 1.0
    assert all(math.isfinite(v) for v in agg["mia"].values())


def test_zero_component_is_named(
    trained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    # perturbed answers that repeat the base answer's wording and fact: tr = 1 -> 1 - tr = 0
    rows = [dict(r, perturbed_answer=[r["paraphrased_answer"]] * 2) for r in qa_rows[4:]]
    data = {"forget10_perturbed": qa_rows[:4], "retain_perturbed": rows}
    agg = evaluate_tofu(trained_model, tokenizer, data, max_new_tokens=16)["aggregate"]
    assert agg["model_utility"] == 0.0
    assert agg["model_utility_zero_components"] == ["retain_truth_ratio"]


def test_reference_from_forward_passes_equals_the_evaluated_one(
    untrained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, tofu_data: dict
) -> None:
    from fastngd.eval import reference_truth_ratios

    rows = tofu_data["forget10_perturbed"]
    fast = reference_truth_ratios(untrained_model, tokenizer, rows, forget_split="forget10")
    full = reference_from_result(
        evaluate_tofu(untrained_model, tokenizer, {"forget10_perturbed": rows}, max_new_tokens=1)
    )
    assert fast.questions == full.questions and fast.forget_split == full.forget_split
    assert fast.log_truth_ratios == pytest.approx(full.log_truth_ratios, abs=1e-9)

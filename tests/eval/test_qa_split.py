"""One QA split scored the TOFU way: option-normalised probability, base answers, layout."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from fastngd.eval import QASplitSpec, answer_logprob, normalised_probability, score_qa_split


def test_normalised_probability_hand_computed() -> None:
    # P(a) = 0.5, two options of 0.25 each: 0.5 / (0.5 + 0.25 + 0.25)
    assert normalised_probability(math.log(0.5), [math.log(0.25)] * 2) == pytest.approx(0.5)
    # all four probabilities underflow (e^-1000): the ratio is still 1 / (1 + e^-1)
    assert normalised_probability(-1000.0, [-1001.0]) == pytest.approx(1 / (1 + math.exp(-1)))


@given(st.floats(-30, 0), st.lists(st.floats(-30, 0), min_size=1, max_size=5))
def test_normalised_probability_matches_the_direct_formula(lp: float, options: list[float]) -> None:
    p = math.exp(lp)
    expected = p / (p + sum(math.exp(v) for v in options))
    assert normalised_probability(lp, options) == pytest.approx(expected, rel=1e-9)


def _fact_rows(qa_rows: list[dict]) -> list[dict]:
    """Real-authors-style rows: perturbed answers in the answer's wording, no paraphrase."""
    out = []
    for r in qa_rows[:4]:
        wrong = [r["answer"].replace(r["fact"], w) for w in ("ochre", "jade", "ivory")]
        out.append(
            {
                "question": r["question"],
                "answer": r["answer"],
                "fact": r["fact"],
                "perturbed_answer": wrong,
            }
        )
    return out


def test_utility_split_uses_the_answer_as_base_and_normalises(
    trained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    rows = _fact_rows(qa_rows)
    agg, per, scores = score_qa_split(
        trained_model,
        tokenizer,
        "real_authors_perturbed",
        rows,
        QASplitSpec("retain", "answer", normalise=True),
        batch_size=8,
        max_new_tokens=12,
        max_length=64,
        chat_template=False,
    )
    qs = [r["question"] for r in rows]
    lp_answer = answer_logprob(trained_model, tokenizer, qs, [r["answer"] for r in rows])
    for row, r, lp in zip(per, rows, lp_answer):
        lp_wrong = answer_logprob(
            trained_model, tokenizer, [r["question"]] * 3, r["perturbed_answer"]
        )
        assert row["log_truth_ratio"] == pytest.approx(sum(lp_wrong) / 3 - lp, abs=1e-6)
        assert row["paraphrased_probability"] == pytest.approx(math.exp(lp))  # the base
        assert row["probability"] == pytest.approx(normalised_probability(lp, lp_wrong))
        assert row["answer_probability"] == pytest.approx(math.exp(lp))
    assert agg["probability"] == pytest.approx(sum(r["probability"] for r in per) / len(per))
    assert agg["truth_ratio"] == pytest.approx(
        sum(max(0.0, 1 - r["truth_ratio"]) for r in per) / len(per)
    )
    assert agg["probability"] < agg["answer_probability"]  # the options take some mass
    assert len(scores) == len(rows) and agg["n"] == 4


def test_retain_split_without_perturbations_has_no_truth_ratio(
    trained_model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict]
) -> None:
    rows = [{"question": r["question"], "answer": r["answer"]} for r in qa_rows[:3]]
    agg, per, _ = score_qa_split(
        trained_model,
        tokenizer,
        "retain90",
        rows,
        QASplitSpec(),
        batch_size=8,
        max_new_tokens=12,
        max_length=64,
        chat_template=False,
    )
    assert agg["truth_ratio"] is None and agg["fact_accuracy"] is None
    assert agg["rougeL_recall"] == 1.0 and agg["exact_memorization"] == 1.0
    assert agg["extraction_strength"] == 1.0
    assert all(row["log_truth_ratio"] is None for row in per)

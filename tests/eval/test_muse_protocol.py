"""End-to-end MUSE evaluation on the embedded muse-synthetic data."""

from __future__ import annotations

import json

import pytest
from transformers import PreTrainedTokenizerFast

from fastngd.data import TextDataset, muse_synthetic
from fastngd.eval import evaluate_muse
from fastngd.models import TrainingRecipe, build_word_tokenizer, fit

from .conftest import make_model


@pytest.fixture(scope="module")
def muse_data() -> dict:
    return muse_synthetic(seed=0)


@pytest.fixture(scope="module")
def muse_tokenizer(muse_data: dict) -> PreTrainedTokenizerFast:
    texts = ["Question: Answer:"]
    for config in muse_data.values():
        for rows in config.values():
            texts += [v for row in rows for v in row.values() if isinstance(v, str)]
    return build_word_tokenizer(texts)


def test_model_that_memorised_the_forget_texts_leaks(
    muse_data: dict, muse_tokenizer: PreTrainedTokenizerFast
) -> None:
    model = make_model(muse_tokenizer)
    before = evaluate_muse(
        model,
        muse_tokenizer,
        muse_data,
        verbmem_max_new_tokens=16,
        knowmem_max_new_tokens=2,
        max_examples=2,
    )
    recipe = TrainingRecipe(epochs=40, lr=5e-3, batch_size=8, warmup_fraction=0.0)
    fit(
        model,
        TextDataset(muse_data["raw"]["forget"], muse_tokenizer, 128),
        muse_tokenizer,
        recipe,
        progress=False,
    )
    after = evaluate_muse(
        model,
        muse_tokenizer,
        muse_data,
        verbmem_max_new_tokens=16,
        knowmem_max_new_tokens=8,
        max_examples=4,
    )
    agg = after["aggregate"]
    assert agg["mia_auc"] == 1.0 and agg["privleak_auc"] == 0.0
    assert agg["privleak"] == pytest.approx(-100.0)  # MUSE's sign for a memorised target
    assert agg["mia"]["loss"] == 1.0 and agg["mia"]["min_k_plus_plus"] == 1.0
    assert agg["verbmem_forget"] > 25.0 and agg["exact_memorization"] > 0.5
    assert before["aggregate"]["verbmem_forget"] < 20.0
    assert before["aggregate"]["exact_memorization"] < agg["exact_memorization"]
    assert json.loads(json.dumps(after, allow_nan=False)) == after
    assert after["protocol"] == "muse"
    assert set(agg) == {
        "verbmem_forget",
        "knowmem_forget",
        "knowmem_retain",
        "mia_auc",
        "privleak",
        "privleak_auc",
        "mia",
        "k",
        "ref_auc",
        "extraction_strength",
        "exact_memorization",
        "model_utility",
        "model_utility_components",
        "model_utility_zero_components",
        "forget_quality",
    }
    assert set(after["per_example"]) == {
        "verbmem_forget",
        "knowmem_forget",
        "knowmem_retain",
        "privleak_forget",
        "privleak_holdout",
        "mia_forget",
        "mia_holdout",
    }
    assert len(after["per_example"]["knowmem_retain"]) == 4
    assert after["settings"]["knowmem_icl_examples"] == {"forget_qa": 3, "retain_qa": 3}


def test_reference_auc_follows_the_corpus(
    muse_data: dict, muse_tokenizer: PreTrainedTokenizerFast
) -> None:
    model = make_model(muse_tokenizer)
    kwargs = {"verbmem_max_new_tokens": 2, "knowmem_max_new_tokens": 2, "max_examples": 2}
    news = evaluate_muse(model, muse_tokenizer, muse_data, corpus="news", **kwargs)
    agg = news["aggregate"]
    assert agg["ref_auc"] == 0.4772
    assert agg["privleak"] == pytest.approx((agg["privleak_auc"] - 0.4772) / 0.4772 * 100)
    custom = evaluate_muse(model, muse_tokenizer, muse_data, ref_auc=0.6, **kwargs)
    assert custom["aggregate"]["ref_auc"] == 0.6
    with pytest.raises(ValueError, match="ref_auc"):
        evaluate_muse(model, muse_tokenizer, muse_data, ref_auc=1.5, **kwargs)


def test_knowmem_prompts_with_the_icl_examples_and_cuts_at_stop_strings(
    muse_data: dict, muse_tokenizer: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fastngd.eval.muse_protocol as protocol

    seen: list[dict] = []
    real = protocol.generate

    def spy(model, tokenizer, prompts, **kwargs):
        seen.append({"prompts": list(prompts), **kwargs})
        return real(model, tokenizer, prompts, **kwargs)

    monkeypatch.setattr(protocol, "generate", spy)
    model = make_model(muse_tokenizer)
    evaluate_muse(
        model,
        muse_tokenizer,
        muse_data,
        verbmem_max_new_tokens=2,
        knowmem_max_new_tokens=3,
        max_examples=1,
    )
    verb, forget, retain = seen
    assert verb["max_new_tokens"] == 2 and not verb.get("stop_strings")
    icl = muse_data["knowmem"]["forget_qa_icl"]
    question = muse_data["knowmem"]["forget_qa"][0]["question"]
    assert forget["prompts"] == [
        "".join(f"Question: {r['question']}\nAnswer: {r['answer']}\n\n" for r in icl)
        + f"Question: {question}\nAnswer: "
    ]
    assert forget["stop_strings"] == ("\n\n", "\nQuestion", "Question:")
    assert forget["max_new_tokens"] == 3
    assert muse_data["knowmem"]["retain_qa_icl"][0]["question"] in retain["prompts"][0]


def test_verbmem_scores_the_gt_cut_to_the_generated_length(
    muse_data: dict, muse_tokenizer: PreTrainedTokenizerFast
) -> None:
    model = make_model(muse_tokenizer)
    result = evaluate_muse(
        model,
        muse_tokenizer,
        muse_data,
        verbmem_max_new_tokens=5,
        knowmem_max_new_tokens=2,
        max_examples=1,
    )
    row = result["per_example"]["verbmem_forget"][0]
    full_gt = muse_data["verbmem"]["forget"][0]["gt"]
    assert row["gt"] == muse_tokenizer.decode(muse_tokenizer(full_gt)["input_ids"][:5])
    assert len(muse_tokenizer(row["gt"])["input_ids"]) == 5


def test_missing_optional_splits_fall_back_with_a_warning(
    muse_data: dict, muse_tokenizer: PreTrainedTokenizerFast
) -> None:
    from fastngd.data import MissingDataWarning

    model = make_model(muse_tokenizer)
    data = {k: dict(v) for k, v in muse_data.items()}
    del data["privleak"]["holdout"]
    data["knowmem"]["forget_qa_icl"] = None  # as load_muse(..., optional=True) gives it
    with pytest.warns(MissingDataWarning) as record:
        result = evaluate_muse(
            model,
            muse_tokenizer,
            data,
            verbmem_max_new_tokens=2,
            knowmem_max_new_tokens=2,
            max_examples=1,
        )
    messages = " ".join(str(w.message) for w in record)
    assert "knowmem/forget_qa_icl is missing" in messages
    assert "privleak/holdout is missing" in messages
    agg = result["aggregate"]
    assert agg["privleak"] is None and agg["mia"] is None and agg["mia_auc"] is None
    assert agg["knowmem_forget"] is not None  # zero-shot
    assert result["settings"]["knowmem_icl_examples"] == {"forget_qa": 0, "retain_qa": 3}
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_missing_split_is_named(muse_data: dict, muse_tokenizer: PreTrainedTokenizerFast) -> None:
    model = make_model(muse_tokenizer)
    data = {k: dict(v) for k, v in muse_data.items()}
    del data["knowmem"]["retain_qa"]
    with pytest.raises(KeyError, match="split 'retain_qa' of config 'knowmem'"):
        evaluate_muse(
            model,
            muse_tokenizer,
            data,
            verbmem_max_new_tokens=2,
            knowmem_max_new_tokens=2,
            max_examples=1,
        )
    with pytest.raises(KeyError, match="config 'verbmem'"):
        evaluate_muse(model, muse_tokenizer, {}, max_examples=1)

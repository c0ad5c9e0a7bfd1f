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
    assert after["aggregate"]["mia_auc"] == 1.0
    assert after["aggregate"]["privleak"] == pytest.approx(100.0)
    assert after["aggregate"]["verbmem_forget"] > 25.0
    assert before["aggregate"]["verbmem_forget"] < 20.0
    assert json.loads(json.dumps(after)) == after
    assert set(after["aggregate"]) == {
        "verbmem_forget",
        "knowmem_forget",
        "knowmem_retain",
        "mia_auc",
        "privleak",
        "k",
        "ref_auc",
    }
    assert set(after["per_example"]) == {
        "verbmem_forget",
        "knowmem_forget",
        "knowmem_retain",
        "privleak_forget",
        "privleak_holdout",
    }
    assert len(after["per_example"]["knowmem_retain"]) == 4


def test_missing_split_is_named(muse_data: dict, muse_tokenizer: PreTrainedTokenizerFast) -> None:
    model = make_model(muse_tokenizer)
    data = {k: dict(v) for k, v in muse_data.items()}
    del data["privleak"]["holdout"]
    with pytest.raises(KeyError, match="split 'holdout' of config 'privleak'"):
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

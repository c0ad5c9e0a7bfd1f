"""Tiny QA data and tiny Llama models (untrained and trained for a few seconds)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from fastngd.data import QADataset, format_prompt
from fastngd.models import TrainingRecipe, build_word_tokenizer, fit, tiny_llama_config

_PEOPLE = ["Arvo Quill", "Bexa Morn", "Cato Vire", "Dulu Pask"]
_FACTS = {
    "colour": ["crimson", "teal", "amber", "violet"],
    "city": ["Olmark", "Pinfell", "Rusk", "Tavor"],
}
_OTHER = {"colour": ["ochre", "jade", "ivory"], "city": ["Zell", "Yarrow", "Wick"]}


def _rows() -> list[dict[str, Any]]:
    rows = []
    for i, person in enumerate(_PEOPLE):
        colour, city = _FACTS["colour"][i], _FACTS["city"][i]
        rows.append(
            {
                "question": f"What colour does {person} like?",
                "answer": f"{person} likes the colour {colour}.",
                "fact": colour,
                "paraphrased_answer": f"The favourite colour of {person} is {colour}.",
                "perturbed_answer": [
                    f"The favourite colour of {person} is {c}." for c in _OTHER["colour"]
                ],
            }
        )
        rows.append(
            {
                "question": f"Where was {person} born?",
                "answer": f"{person} was born in the town of {city}.",
                "fact": city,
                "paraphrased_answer": f"The birthplace of {person} is {city}.",
                "perturbed_answer": [f"The birthplace of {person} is {c}." for c in _OTHER["city"]],
            }
        )
    return rows


@pytest.fixture(scope="session")
def qa_rows() -> list[dict[str, Any]]:
    """8 QA pairs (4 people × 2 attributes) in the TOFU perturbed schema, with facts."""
    return _rows()


@pytest.fixture(scope="session")
def tofu_data(qa_rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A TOFU-shaped dict: the first 2 people are forgotten, the last 2 retained."""
    return {"forget10_perturbed": qa_rows[:4], "retain_perturbed": qa_rows[4:]}


@pytest.fixture(scope="session")
def tokenizer(qa_rows: list[dict[str, Any]]) -> PreTrainedTokenizerFast:
    texts = [format_prompt(r["question"]) for r in qa_rows]
    for r in qa_rows:
        texts += [r["answer"], r["paraphrased_answer"], *r["perturbed_answer"]]
    return build_word_tokenizer(texts)


def make_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer, 64-wide Llama for ``tokenizer`` initialised from ``seed``."""
    config = tiny_llama_config(
        len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()


@pytest.fixture(scope="session")
def untrained_model(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    return make_model(tokenizer)


@pytest.fixture(scope="session")
def trained_model(
    tokenizer: PreTrainedTokenizerFast, qa_rows: list[dict[str, Any]]
) -> LlamaForCausalLM:
    """The tiny model after memorising the 8 QA answers (a few seconds on CPU)."""
    model = make_model(tokenizer)
    recipe = TrainingRecipe(epochs=45, lr=5e-3, batch_size=8, warmup_fraction=0.0)
    fit(model, QADataset(qa_rows, tokenizer, 64), tokenizer, recipe, progress=False)
    return model.eval()

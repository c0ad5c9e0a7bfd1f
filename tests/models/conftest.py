"""A recipe small enough to train the embedded benchmarks in about a second."""

from __future__ import annotations

import pytest

from fastngd.models import TrainingRecipe

TINY_MODEL = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
}


@pytest.fixture()
def tiny_recipe() -> TrainingRecipe:
    """One epoch of a 1-layer, 32-wide model."""
    return TrainingRecipe(epochs=1, batch_size=64, model=TINY_MODEL)

"""Which ``fastngd finetune`` combinations can work, decided before any work, and the
recipes each kind of model gets."""
from __future__ import annotations

import pytest

from fastngd.errors import UsageError
from fastngd.models import default_recipe
from fastngd.models.finetune import PRETRAINED_RECIPE, check_finetune_args, embedded_recipe
from fastngd.models.target import is_embedded, load_target_model


@pytest.mark.parametrize("model, benchmark, kwargs, match", [
    ("embedded", "tofu", {}, "--data-dir"),
    (None, "muse-news", {}, "--data-dir"),
    ("./m", "muse-synthetic", {}, "QA benchmarks"),
    (None, "tofu-synthetic", {"split": "retain"}, "retain split such as retain90"),
    (None, "tofu-synthetic", {"split": "forget10"}, "--split"),
    (None, "muse-synthetic", {"split": "retain90"}, "full or retain"),
    ("./m", "tofu", {"split": "retain100"}, "--split"),
])
def test_refused_combinations(model, benchmark, kwargs, match) -> None:
    with pytest.raises(UsageError, match=match):
        check_finetune_args(model, benchmark, **kwargs)


def test_accepted_combinations(tmp_path) -> None:
    check_finetune_args("embedded", "muse-synthetic", split="retain")
    check_finetune_args(None, "tofu-synthetic", split="retain95")
    check_finetune_args(None, "tofu", data_dir=tmp_path)
    check_finetune_args(None, "muse-books", split="retain", data_dir=tmp_path)
    check_finetune_args("./m", "tofu", split="retain90")
    assert is_embedded(None) and is_embedded("embedded") and not is_embedded("gpt2")


def test_the_embedded_model_has_its_own_recipe() -> None:
    assert embedded_recipe("tofu") is None  # the default recipe: the cache key of the others
    mine = embedded_recipe("tofu", lr=3e-3)
    assert mine is not None and mine.lr == 3e-3
    assert mine.epochs == default_recipe("tofu").epochs == default_recipe("tofu-synthetic").epochs
    assert default_recipe("tofu").lr != PRETRAINED_RECIPE.lr
    assert default_recipe("tofu").epochs != PRETRAINED_RECIPE.epochs
    assert default_recipe("muse-news") == default_recipe("muse-synthetic")


def test_embedded_model_of_a_hub_layout_needs_the_users_files() -> None:
    with pytest.raises(UsageError, match="--benchmark tofu trains on your files"):
        load_target_model("embedded", benchmark="tofu")
    with pytest.raises(UsageError, match="embedded model exists only"):
        load_target_model("embedded", benchmark="digits")

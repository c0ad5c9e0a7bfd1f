"""Which ``fastngd finetune`` combinations can work, decided before any work."""
from __future__ import annotations

import pytest

from fastngd.errors import UsageError
from fastngd.models.finetune import check_finetune_args
from fastngd.models.target import is_embedded, load_target_model


@pytest.mark.parametrize("model, benchmark, kwargs, match", [
    ("embedded", "tofu", {}, "needs --model"),
    (None, "tofu-synthetic", {"lr": 0.1}, "--lr"),
    ("embedded", "muse-synthetic", {"batch_size": 4}, "--batch-size"),
    ("./m", "muse-synthetic", {}, "QA benchmarks"),
])
def test_refused_combinations(model, benchmark, kwargs, match) -> None:
    with pytest.raises(UsageError, match=match):
        check_finetune_args(model, benchmark, **kwargs)


def test_accepted_combinations() -> None:
    check_finetune_args("embedded", "muse-synthetic")
    check_finetune_args("./m", "tofu", lr=1e-5, batch_size=4)
    assert is_embedded(None) and is_embedded("embedded") and not is_embedded("gpt2")


def test_embedded_model_exists_only_for_synthetic_benchmarks() -> None:
    with pytest.raises(UsageError, match="--benchmark tofu"):
        load_target_model("embedded", benchmark="tofu")

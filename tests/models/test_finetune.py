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
    (None, "tofu-synthetic", {"split": "retain"}, "supported: full, retain90, retain95, retain99"),
    (None, "tofu-synthetic", {"split": "forget10"}, "--split"),
    (None, "muse-synthetic", {"split": "retain90"}, "--split retain90 .* supported: full, retain "),
    ("./m", "tofu", {"split": "retain100"}, "--split"),
    ("./m", "tofu", {"split": "retain80"}, "supported: full, retain90, retain95, retain99"),
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


@pytest.mark.parametrize("kwargs, match", [
    ({"model": "embedded", "benchmark": "tofu"}, "--data-dir"),
    ({"model": "./m", "benchmark": "muse-synthetic"}, "QA benchmarks"),
    ({"model": None, "benchmark": "tofu-synthetic", "data_dir": "."}, "--data-dir does not apply"),
    ({"model": "./m", "benchmark": "tofu-synthetic", "dtype": "float8"}, "unknown dtype"),
    ({"model": "./m", "benchmark": "tofu-synthetic", "device": "tpu"}, "--device tpu"),
])
def test_finetune_checks_its_arguments_before_any_work(
        kwargs, match, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastngd.models import finetune as finetune_module

    def no_work(*args, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError("nothing is read or loaded before the checks")

    for name in ("load_split", "load_target_model", "fit"):
        monkeypatch.setattr(finetune_module, name, no_work)
    with pytest.raises(UsageError, match=match):
        finetune_module.finetune(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_finetune_reads_the_split_it_is_not_given(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastngd.models import finetune as finetune_module
    from tests.reproduce.conftest import save_tiny_model

    model = save_tiny_model(tmp_path / "m")
    reads: list[tuple[str, str]] = []
    real = finetune_module.load_split

    def counting(benchmark: str, config: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append((benchmark, config))
        return real(benchmark, config, *args, **kwargs)[:8]

    monkeypatch.setattr(finetune_module, "load_split", counting)
    out = tmp_path / "out"
    out.mkdir()
    assert finetune_module.finetune(out, model=str(model), benchmark="tofu-synthetic",
                                    split="retain90", epochs=1, log=lambda s: None) == out
    assert reads == [("tofu-synthetic", "retain90")]
    assert (out / "config.json").exists()

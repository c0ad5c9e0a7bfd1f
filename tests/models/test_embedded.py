"""The embedded model cache: trained once, then reused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fastngd.models import TrainingRecipe, default_cache_dir, embedded_model_key, get_embedded_model
from fastngd.models import embedded as embedded_module
from fastngd.models import training as training_module


@pytest.fixture()
def fast_default(monkeypatch: pytest.MonkeyPatch, tiny_recipe: TrainingRecipe) -> TrainingRecipe:
    """Make the default recipe the one-second tiny recipe."""
    monkeypatch.setattr(embedded_module, "default_recipe", lambda benchmark: tiny_recipe)
    monkeypatch.setattr(training_module, "default_recipe", lambda benchmark: tiny_recipe)
    return tiny_recipe


def test_trains_once_then_loads_from_cache(
    tmp_path: Path, fast_default: TrainingRecipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tok, path = get_embedded_model(cache_dir=tmp_path, progress=False)
    assert path.parent == tmp_path and path.name == embedded_model_key("tofu-synthetic", 0)
    assert path.name.startswith("tofu-synthetic-seed0-")

    def no_training(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the cached model should have been reused")

    monkeypatch.setattr(embedded_module, "train_target_model", no_training)
    again, tok2, path2 = get_embedded_model(cache_dir=tmp_path, progress=False)
    assert path2 == path
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))
    assert tok2.get_vocab() == tok.get_vocab()


def test_key_depends_on_seed_benchmark_and_recipe(fast_default: TrainingRecipe) -> None:
    k0 = embedded_model_key("tofu-synthetic", 0)
    assert k0 == embedded_model_key("tofu-synthetic", 0)
    assert k0 != embedded_model_key("tofu-synthetic", 1)
    assert k0 != embedded_model_key("tofu-synthetic", 0, TrainingRecipe(epochs=2))
    assert embedded_model_key("muse-synthetic", 0).startswith("muse-synthetic-seed0-")


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FASTNGD_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("FASTNGD_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "fastngd"


def test_unknown_benchmark(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown benchmark"):
        get_embedded_model("nope", cache_dir=tmp_path)


def test_the_split_is_part_of_the_key(fast_default: TrainingRecipe) -> None:
    full = embedded_model_key("tofu-synthetic", 0)
    retain = embedded_model_key("tofu-synthetic", 0, split="retain90")
    assert retain.startswith("tofu-synthetic-retain90-seed0-")
    assert len({full, retain, embedded_model_key("tofu-synthetic", 0, split="retain95")}) == 3
    assert embedded_model_key("muse-synthetic", 0, split="retain").startswith(
        "muse-synthetic-retain-seed0-")


def test_a_users_files_are_keyed_by_content_not_path(
    tmp_path: Path, fast_default: TrainingRecipe
) -> None:
    import shutil

    from fastngd.data import export_benchmark

    first = tmp_path / "a"
    export_benchmark("tofu-synthetic", first)
    second = Path(shutil.copytree(first, tmp_path / "b"))
    key = embedded_model_key("tofu", 0, data_dir=first)
    assert key.startswith("tofu-seed0-") and key == embedded_model_key("tofu", 0, data_dir=second)
    assert key != embedded_model_key("tofu", 0, data_dir=first, split="retain90")
    path = second / "world_facts" / "train.jsonl"
    path.write_text(path.read_text().replace("the", "a", 1))
    assert key != embedded_model_key("tofu", 0, data_dir=second)


def test_a_users_files_are_read_once_per_call(
    tmp_path: Path, fast_default: TrainingRecipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastngd.data import export_benchmark, loading

    data = tmp_path / "data"
    export_benchmark("tofu-synthetic", data)
    reads: list[object] = []
    real = loading.load_all_splits

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(loading, "load_all_splits", counting)
    _, _, path = get_embedded_model("tofu", data_dir=data, cache_dir=tmp_path / "c",
                                    progress=False)
    assert len(reads) == 1  # the key and the training share one corpus
    _, _, again = get_embedded_model("tofu", data_dir=data, cache_dir=tmp_path / "c",
                                     progress=False)
    assert again == path and len(reads) == 2  # cached: read once, for the key

"""Tests of benchmark export and its round trip through the loaders."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastngd.data.export import export_benchmark
from fastngd.data.muse import load_muse
from fastngd.data.synthetic_muse import muse_synthetic
from fastngd.data.synthetic_tofu import TOFU_SYNTHETIC_CONFIGS, tofu_synthetic
from fastngd.data.tofu import load_tofu


def test_tofu_synthetic_round_trip(tmp_path: Path) -> None:
    paths = export_benchmark("tofu-synthetic", tmp_path, seed=2)
    assert sorted(paths) == sorted(tmp_path / c / "train.jsonl" for c in TOFU_SYNTHETIC_CONFIGS)
    expected = tofu_synthetic(2)
    for config in TOFU_SYNTHETIC_CONFIGS:
        assert load_tofu(config, data_dir=tmp_path) == expected[config]


def test_muse_synthetic_round_trip(tmp_path: Path) -> None:
    paths = export_benchmark("muse-synthetic", tmp_path)
    expected = muse_synthetic(0)
    assert len(paths) == sum(len(splits) for splits in expected.values())
    for config, splits in expected.items():
        for split, rows in splits.items():
            assert load_muse("News", config, split, data_dir=tmp_path) == rows


def test_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    existing = tmp_path / "forget10" / "train.jsonl"
    existing.parent.mkdir()
    existing.write_text("keep me\n")
    with pytest.raises(FileExistsError, match="forget10"):
        export_benchmark("tofu-synthetic", tmp_path)
    assert existing.read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forget10"]
    export_benchmark("tofu-synthetic", tmp_path, overwrite=True)
    assert load_tofu("forget10", data_dir=tmp_path) == tofu_synthetic(0)["forget10"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown benchmark"):
        export_benchmark("nope", tmp_path)
    target = tmp_path / "file"
    target.write_text("")
    with pytest.raises(NotADirectoryError):
        export_benchmark("tofu-synthetic", target)


def test_hub_benchmark_export_fails_cleanly_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match="locuslab/TOFU"):
        export_benchmark("tofu", tmp_path / "out")
    assert not (tmp_path / "out").exists()

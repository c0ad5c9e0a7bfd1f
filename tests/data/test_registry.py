"""Tests of the benchmark registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastngd.data import MissingDataWarning
from fastngd.data.files import write_jsonl_atomic
from fastngd.data.registry import BENCHMARKS, load_benchmark
from fastngd.data.synthetic_muse import muse_synthetic
from fastngd.data.synthetic_tofu import tofu_synthetic


def test_names() -> None:
    assert set(BENCHMARKS) == {
        "tofu",
        "muse-news",
        "muse-books",
        "tofu-synthetic",
        "muse-synthetic",
    }


def test_synthetic_benchmarks() -> None:
    assert load_benchmark("tofu-synthetic", "forget10") == tofu_synthetic(0)["forget10"]
    assert load_benchmark("tofu-synthetic", "full", seed=5) == tofu_synthetic(5)["full"]
    assert (
        load_benchmark("muse-synthetic", "knowmem", "retain_qa")
        == muse_synthetic(0)["knowmem"]["retain_qa"]
    )


@pytest.mark.parametrize(
    "args,match",
    [
        (("tofu-synth", "full"), r"unknown benchmark 'tofu-synth'.*tofu-synthetic"),
        (("tofu-synthetic", "forget20"), r"unknown config 'forget20'.*forget10"),
        (("tofu-synthetic", "full", "test"), r"unknown split 'test'.*train"),
        (("muse-synthetic", "raw"), r"unknown split 'train'.*retain1"),
        (("muse-news", "verbmem", "retain"), r"unknown split 'retain'.*forget"),
        (("tofu", "real_author"), r"unknown config 'real_author'.*real_authors"),
    ],
)
def test_bad_names_list_valid_ones(args: tuple[str, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_benchmark(*args)


def test_synthetic_rejects_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data_dir"):
        load_benchmark("tofu-synthetic", "full", data_dir=tmp_path)


def test_hub_benchmarks_read_local_files(tmp_path: Path) -> None:
    write_jsonl_atomic(tmp_path / "full.jsonl", [{"question": "q", "answer": "a"}])
    write_jsonl_atomic(tmp_path / "raw" / "forget.jsonl", [{"text": "t"}])
    assert load_benchmark("tofu", "full", data_dir=tmp_path) == [{"question": "q", "answer": "a"}]
    assert load_benchmark("muse-books", "raw", "forget", data_dir=tmp_path) == [{"text": "t"}]


def test_optional_loads(tmp_path: Path) -> None:
    write_jsonl_atomic(tmp_path / "forget10.jsonl", [{"question": "q", "answer": "a"}])
    (tmp_path / "forget10_perturbed.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    with pytest.warns(MissingDataWarning, match=r"tofu config 'forget10_perturbed'.*paraphrased"):
        rows = load_benchmark("tofu", "forget10_perturbed", data_dir=tmp_path, optional=True)
    assert rows is None
    assert load_benchmark("tofu", "forget10", data_dir=tmp_path, optional=True) is not None
    synthetic = load_benchmark("tofu-synthetic", "holdout10", optional=True)
    assert synthetic == tofu_synthetic(0)["holdout10"]

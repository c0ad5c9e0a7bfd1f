"""The embedded models' training corpora: target (full) and retain-only reference."""

from __future__ import annotations

import pytest

from fastngd.data import muse_synthetic, tofu_synthetic
from fastngd.models import benchmark_corpus


def _pairs(rows: list[dict]) -> set[tuple[str, str]]:
    return {(r["question"], r["answer"]) for r in rows}


@pytest.mark.parametrize("split", ["retain90", "retain95", "retain99"])
def test_tofu_retain_corpus_is_full_minus_the_forget_authors(split: str) -> None:
    data = tofu_synthetic(0)
    full_qa, _, full_vocab = benchmark_corpus("tofu-synthetic", 0)
    qa, texts, vocab = benchmark_corpus("tofu-synthetic", 0, split=split)
    forget = f"forget{100 - int(split[6:]):02d}"
    assert texts == [] and vocab == full_vocab  # one tokenizer for target and reference
    assert _pairs(qa) == _pairs(full_qa) - _pairs(data[forget])
    utility = _pairs(data["real_authors"]) | _pairs(data["world_facts"])
    assert utility <= _pairs(qa) and utility <= _pairs(full_qa)


def test_tofu_holdout_authors_are_in_no_corpus() -> None:
    holdout = _pairs(tofu_synthetic(0)["holdout10"])
    for split in ("full", "retain90"):
        assert not holdout & _pairs(benchmark_corpus("tofu-synthetic", 0, split=split)[0])
    # ... but their words are in the vocabulary, so no evaluation text has unknown words
    vocab = " ".join(benchmark_corpus("tofu-synthetic", 0)[2])
    assert all(q in vocab for q, _ in holdout)


def test_muse_retain_corpus_leaves_out_the_forget_texts_and_qa() -> None:
    data = muse_synthetic(0)
    qa, texts, vocab = benchmark_corpus("muse-synthetic", 0, split="retain")
    forget_texts = {r["text"] for r in data["raw"]["forget"]}
    assert texts and not forget_texts & {r["text"] for r in texts}
    assert not _pairs(data["knowmem"]["forget_qa"]) & _pairs(qa)
    assert _pairs(data["knowmem"]["retain_qa"]) <= _pairs(qa)
    assert vocab == benchmark_corpus("muse-synthetic", 0)[2]


@pytest.mark.parametrize(
    "benchmark,split",
    [
        ("tofu-synthetic", "retain_perturbed"),
        ("tofu-synthetic", "forget10"),
        ("muse-synthetic", "retain90"),
    ],
)
def test_unknown_split(benchmark: str, split: str) -> None:
    with pytest.raises(ValueError, match="split must be"):
        benchmark_corpus(benchmark, 0, split=split)


def test_a_users_tofu_files_give_the_same_corpus_as_the_built_in_data(tmp_path) -> None:
    from fastngd.data import export_benchmark

    export_benchmark("tofu-synthetic", tmp_path / "tofu")
    for split in ("full", "retain90"):
        builtin = benchmark_corpus("tofu-synthetic", 0, split=split)
        mine = benchmark_corpus("tofu", split=split, data_dir=tmp_path / "tofu")
        assert _pairs(mine[0]) == _pairs(builtin[0]) and mine[1] == []
        assert set(builtin[2]) <= set(mine[2])  # every file's words are in the vocabulary


def test_a_users_muse_files_train_the_raw_texts(tmp_path) -> None:
    from fastngd.data import export_benchmark
    from fastngd.errors import InputError, UsageError

    export_benchmark("muse-synthetic", tmp_path / "muse")
    raw = muse_synthetic(0)["raw"]
    qa, texts, _ = benchmark_corpus("muse-news", data_dir=tmp_path / "muse")
    assert qa == [] and {r["text"] for r in texts} == {
        r["text"] for name in ("forget", "retain1", "retain2") for r in raw[name]}
    _, retain_texts, _ = benchmark_corpus("muse-news", split="retain",
                                          data_dir=tmp_path / "muse")
    assert len(retain_texts) == len(texts) - len(raw["forget"])
    with pytest.raises(UsageError, match="full or retain"):
        benchmark_corpus("muse-news", split="retain90", data_dir=tmp_path / "muse")
    (tmp_path / "muse" / "raw" / "forget.jsonl").unlink()
    with pytest.raises(InputError, match="raw/forget"):
        benchmark_corpus("muse-books", data_dir=tmp_path / "muse")


def test_a_users_tofu_split_must_be_in_the_files(tmp_path) -> None:
    from fastngd.data import export_benchmark
    from fastngd.errors import UsageError

    export_benchmark("tofu-synthetic", tmp_path / "tofu")
    with pytest.raises(UsageError, match="--split retain80 is not in .*retain90"):
        benchmark_corpus("tofu", split="retain80", data_dir=tmp_path / "tofu")

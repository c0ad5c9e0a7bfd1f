"""What each command reads from a benchmark, and the errors it reports."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fastngd.data import export_benchmark, loading
from fastngd.errors import InputError, UsageError


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exported")
    export_benchmark("tofu-synthetic", root / "tofu")
    export_benchmark("muse-synthetic", root / "muse")
    return {"tofu": root / "tofu", "muse": root / "muse"}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The (config, split) pairs read through the registry."""
    seen: list[tuple[str, str]] = []
    original = loading.load_benchmark

    def recording(name, config, split="train", **kwargs):
        seen.append((config, split))
        return original(name, config, split, **kwargs)

    monkeypatch.setattr(loading, "load_benchmark", recording)
    return seen


def test_tofu_configs() -> None:
    configs = loading.tofu_configs("forget05")
    assert (configs.forget, configs.retain, configs.forget_perturbed) == (
        "forget05", "retain95", "forget05_perturbed")
    for bad in ("forget", "retain10", "forgetAB", "forget100"):
        with pytest.raises(UsageError, match="--forget"):
            loading.tofu_configs(bad)


def test_unlearning_reads_only_forget_and_retain(exported, reads) -> None:
    forget, retain = loading.load_unlearning_rows("tofu", "forget10",
                                                  data_dir=exported["tofu"])
    assert reads == [("forget10", "train"), ("retain90", "train")]
    assert len(forget) == 40 and len(retain) == 360


def test_muse_unlearning_reads_only_raw_texts(exported, reads, tmp_path) -> None:
    data = Path(shutil.copytree(exported["muse"], tmp_path / "muse"))
    shutil.rmtree(data / "knowmem")
    (data / "raw" / "retain2.jsonl").unlink()  # optional: fewer retain texts, a warning
    with pytest.warns(UserWarning, match="retain2"):
        forget, retain = loading.load_unlearning_rows("muse-news", data_dir=data)
    assert {config for config, _ in reads} == {"raw"}
    assert forget and retain and all("text" in r for r in forget + retain)


def test_muse_synthetic_unlearns_everything_its_retrain_model_leaves_out() -> None:
    """The forget set is exactly the target's training material that the retain-only model
    does not get (the forget texts and the forget knowmem QA, alone and in the few-shot
    layout); the retain set is the rest."""
    from fastngd.data.few_shot import few_shot_rows
    from fastngd.models.training import benchmark_corpus

    def material(split: str) -> list[str]:
        qa, texts, _ = benchmark_corpus("muse-synthetic", seed=1, split=split)
        return sorted(map(str, [*texts, *qa]))

    def plain(rows: list[dict]) -> list[str]:
        return sorted(str({k: r[k] for k in ("question", "answer") if k in r} or
                          {"text": r["text"]}) for r in rows)

    forget, retain = loading.load_unlearning_rows("muse-synthetic", seed=1)
    assert any("question" in r for r in forget) and any("text" in r for r in forget)
    assert plain(retain) == material("retain")
    assert sorted(plain(forget) + plain(retain)) == material("full")
    in_context = [r for r in retain if "\nAnswer: " in r.get("question", "")]
    retain_qa = loading.load_split("muse-synthetic", "knowmem", "retain_qa", seed=1)
    assert len(in_context) == len(few_shot_rows(retain_qa)) > 0
    data = loading.load_muse_data("muse-synthetic", seed=1)
    del data["knowmem"]
    with pytest.raises(ValueError, match="knowmem/forget_qa"):
        loading.muse_unlearning_rows("muse-synthetic", data)


def test_user_muse_files_unlearn_raw_texts_even_with_knowmem_files(exported) -> None:
    """A user's MUSE files: the knowmem questions are evaluation data, never unlearned."""
    forget, retain = loading.load_unlearning_rows("muse-news", data_dir=exported["muse"])
    assert all(set(r) == {"text"} for r in forget + retain)
    assert (exported["muse"] / "knowmem").is_dir()


def test_required_split_errors_name_benchmark_and_config(exported, tmp_path) -> None:
    data = Path(shutil.copytree(exported["tofu"], tmp_path / "tofu"))
    (data / "retain90" / "train.jsonl").write_text('["a list, not an object"]\n')
    with pytest.raises(InputError, match="retain90") as info:
        loading.load_unlearning_rows("tofu", "forget10", data_dir=data)
    assert "\n" not in str(info.value)


def test_plain_read_errors_become_input_errors(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(loading, "load_benchmark", broken)
    with pytest.raises(InputError, match="cannot read tofu forget10: 'utf-8' codec"):
        loading.load_split("tofu", "forget10", data_dir=".")
    with pytest.warns(loading.MissingDataWarning, match="without it .the truth ratio"):
        assert loading.load_split("tofu", "forget10", required=False,
                                  purpose="the truth ratio") is None


def test_data_dir_rules() -> None:
    with pytest.raises(UsageError, match="--data-dir does not apply.*tofu-synthetic"):
        loading.check_data_dir("tofu-synthetic", ".")
    with pytest.raises(InputError, match="--data-dir /nonexistent-dir is not a folder"):
        loading.check_data_dir("tofu", "/nonexistent-dir")
    loading.check_data_dir("tofu", None)
    loading.check_data_dir("muse-synthetic", None)


def test_all_splits_reads_only_the_files_present(exported, tmp_path) -> None:
    data = Path(shutil.copytree(exported["tofu"], tmp_path / "tofu"))
    for name in ("forget01", "forget05", "holdout10", "world_facts_perturbed"):
        shutil.rmtree(data / name)
    got = loading.load_all_splits("tofu", data_dir=data)
    assert "forget01" not in got and "holdout10" not in got and "world_facts" in got
    assert len(got["full"]["train"]) == len(got["retain90"]["train"]) + 40
    (data / "full" / "train.jsonl").write_text('{"question": 3}\n')
    with pytest.raises(InputError, match="full"):
        loading.load_all_splits("tofu", data_dir=data)


def test_the_qa_benchmarks_are_defined_once() -> None:
    import fastngd.eval
    from fastngd.data.registry import BENCHMARKS
    from fastngd.models.finetune import FINETUNE_QA_BENCHMARKS

    assert fastngd.eval.QA_BENCHMARKS is loading.QA_BENCHMARKS
    assert FINETUNE_QA_BENCHMARKS is loading.QA_BENCHMARKS
    assert set(loading.QA_BENCHMARKS) | set(loading.TEXT_BENCHMARKS) <= set(BENCHMARKS)
    assert not set(loading.QA_BENCHMARKS) & set(loading.TEXT_BENCHMARKS)


def test_forget_and_retain_splits_are_those_of_the_benchmark() -> None:
    assert loading.forget_splits("tofu") == ("forget01", "forget05", "forget10")
    assert loading.retain_splits("tofu-synthetic") == ("retain90", "retain95", "retain99")
    assert loading.forget_splits("muse-news") == loading.retain_splits("muse-news") == ()
    assert loading.tofu_configs("forget20").retain == "retain80"  # the form alone: accepted
    with pytest.raises(UsageError, match="--forget forget20 is not a forget split of tofu; "
                                         "supported: forget01, forget05, forget10$"):
        loading.tofu_configs("forget20", "tofu")


def test_data_dir_in_the_other_layout_names_the_benchmark_that_reads_it(exported) -> None:
    with pytest.raises(UsageError, match="MUSE layout .*: pass --benchmark muse-news or "
                                         "--benchmark muse-books$") as info:
        loading.check_data_dir("tofu", exported["muse"])
    assert "--split" not in str(info.value)
    with pytest.raises(UsageError, match="TOFU layout .*: pass --benchmark tofu$"):
        loading.check_data_dir("muse-books", exported["tofu"])
    loading.check_data_dir("tofu", exported["tofu"])
    loading.check_data_dir("muse-news", exported["muse"])


def test_data_dir_without_readable_files_names_the_extensions_read(tmp_path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "train.csv").write_text("question,answer\nq,a\n")
    (tmp_path / "forget10.tsv").write_text("q\ta\n")
    with pytest.raises(InputError, match=r"holds no tofu file: the files read are \.jsonl, "
                                         r"\.json or \.parquet .*found only \.csv, \.tsv files$"):
        loading.check_data_dir("tofu", tmp_path)
    with pytest.raises(InputError, match=r"holds no muse-news file.*raw/forget\.jsonl"):
        loading.check_data_dir("muse-news", tmp_path)


def test_training_files_name_the_files_looked_for(exported, tmp_path) -> None:
    data = Path(shutil.copytree(exported["tofu"], tmp_path / "tofu"))
    loading.check_training_files("tofu", data)
    shutil.rmtree(data / "full")
    with pytest.raises(InputError, match=r"no file the embedded tofu model trains on \(looked "
                                         r"for full/train\.jsonl, \.json or \.parquet, or "
                                         r"full\.jsonl, \.json or \.parquet\)$") as info:
        loading.check_training_files("tofu", data)
    assert "--split" not in str(info.value)
    loading.check_training_files("tofu", data, "retain90")
    loading.check_training_files("tofu", None)
    loading.check_training_files("tofu-synthetic", None)
    muse = Path(shutil.copytree(exported["muse"], tmp_path / "muse"))
    (muse / "raw" / "retain1.jsonl").unlink()
    with pytest.raises(InputError, match=r"looked for raw/retain1\.jsonl, \.json or "
                                         r"\.parquet\)$"):
        loading.check_training_files("muse-news", muse)

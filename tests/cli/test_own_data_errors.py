"""A user's own files and ``eval``'s values: what does not fit is refused before the work in
one line that names the flags the command has, the names it supports (forget and retain
splits, layouts, file extensions), and ``eval`` prints what it computed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fastngd.cli import main

from .conftest import one_line_error


def _with_split(folder: Path, name: str, source: str) -> Path:
    """``folder`` with ``name``/train.jsonl, a copy of ``source``'s rows."""
    (folder / name).mkdir()
    shutil.copy(folder / source / "train.jsonl", folder / name / "train.jsonl")
    return folder


@pytest.mark.parametrize("command", ["eval", "unlearn"])
def test_a_forget_split_the_benchmark_lacks_is_one_usage_line(
        command: str, tiny_model: str, tofu_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    data = _with_split(_with_split(tofu_dir, "forget20", "forget10"), "retain80", "retain90")
    out = tmp_path / ("e.json" if command == "eval" else "run")
    assert main([command, "--model", tiny_model, "--benchmark", "tofu", "--data-dir", str(data),
                 "--forget", "forget20", "--out", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err, command)
    assert line.endswith("--forget forget20 is not a forget split of tofu; supported: "
                         "forget01, forget05, forget10")
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--max-examples", "--max-new-tokens"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_eval_counts_below_one_are_refused_by_the_parser(
        flag: str, value: str, tiny_model: str, capsys: pytest.CaptureFixture[str]) -> None:
    other = "--max-new-tokens" if flag == "--max-examples" else "--max-examples"
    with pytest.raises(SystemExit) as info:
        main(["eval", "--model", tiny_model, other, "1", flag, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"argument {flag}: expected a whole number of at least 1, got '{value}'" in err


def test_finetune_split_names_the_supported_splits(
        tofu_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _with_split(tofu_dir, "retain80", "retain90")
    out = tmp_path / "m"
    assert main(["finetune", "--benchmark", "tofu", "--data-dir", str(data), "--split",
                 "retain80", "--out", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err, "finetune")
    assert "supported: full, retain90, retain95, retain99" in line
    assert "is not in --data-dir" not in line
    assert not out.exists()


@pytest.mark.parametrize("command", ["eval", "unlearn", "finetune"])
def test_a_muse_folder_given_as_tofu_names_the_muse_benchmarks(
        command: str, muse_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / ("e.json" if command == "eval" else "run")
    assert main([command, "--benchmark", "tofu", "--data-dir", str(muse_dir), "--out",
                 str(out)]) == 2
    line = one_line_error(capsys.readouterr().err, command)
    assert "--split" not in line
    assert line.endswith("pass --benchmark muse-news or --benchmark muse-books")
    assert not out.exists()


def test_a_tofu_folder_given_as_muse_names_tofu(
        tofu_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unlearn", "--benchmark", "muse-news", "--data-dir", str(tofu_dir), "--out",
                 str(tmp_path / "run")]) == 2
    assert one_line_error(capsys.readouterr().err).endswith("pass --benchmark tofu")


def test_a_folder_of_csv_files_names_the_extensions_read(
        tofu_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for path in tofu_dir.rglob("*.jsonl"):
        path.rename(path.with_suffix(".csv"))
    assert main(["finetune", "--benchmark", "tofu", "--data-dir", str(tofu_dir), "--out",
                 str(tmp_path / "m")]) == 1
    line = one_line_error(capsys.readouterr().err, "finetune")
    assert ".jsonl, .json or .parquet" in line and "found only .csv files" in line


@pytest.mark.parametrize("command", ["eval", "unlearn"])
def test_the_embedded_model_without_its_training_file_names_the_file(
        command: str, tofu_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(tofu_dir / "full")
    out = tmp_path / ("e.json" if command == "eval" else "run")
    assert main([command, "--benchmark", "tofu", "--data-dir", str(tofu_dir), "--cache-dir",
                 str(tmp_path / "cache"), "--out", str(out)]) == 1
    line = one_line_error(capsys.readouterr().err, command)
    assert "--split" not in line and "full/train.jsonl, .json or .parquet" in line
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_eval_prints_the_retain_fact_accuracy_it_computed(
        tiny_model: str, tofu_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without a retain-type split that has facts, FactAcc R is the --retain-split's, and the
    whole split's scores are printed under their own title."""
    shutil.rmtree(tofu_dir / "retain_perturbed")
    report = tmp_path / "e.json"
    assert main(["eval", "--model", tiny_model, "--benchmark", "tofu", "--data-dir",
                 str(tofu_dir), "--retain-split", "retain90", "--max-examples", "3",
                 "--max-new-tokens", "2", "--out", str(report)]) == 0
    printed = capsys.readouterr().out
    record = json.loads(report.read_text())
    computed = record["result"]["aggregate"]["retain_split"]["fact_accuracy"]
    assert computed is not None and record["summary"]["retain_fact_accuracy"] == computed
    assert record["summary"]["retain_split_fact_accuracy"] == computed
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if "FactAcc R↑" in line)
    cells = lines[header + 2].split()  # label, AutoLR, base, Verbmem ... FactAcc R, ModelUtil
    assert cells[0] == tiny_model and cells[-2] == f"{computed:.3f}"
    whole = lines.index("Whole retain split retain90 (--retain-split); FactAcc R↑ above is "
                        "its fact accuracy")
    assert lines[whole + 3].split()[:2] == [tiny_model, "3"]

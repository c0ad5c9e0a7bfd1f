"""What a user meets when something is wrong: one line, exit status 2 (usage) or 1 (input,
runtime), never a traceback, checked before the work, and no folder left behind."""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
import torch

from fastngd.cli import main

from .conftest import one_line_error


def _unlearn(model: str, out: Path, *extra: str) -> list[str]:
    return ["unlearn", "--model", model, "--epochs", "1", "--no-autolr", "--out", str(out),
            *extra]


def test_model_folder_that_does_not_exist(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x"
    assert main(_unlearn(str(tmp_path / "missing"), out)) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "does not exist" in line and "repo" not in line
    assert not out.exists()  # a failed command leaves no empty --out folder


@pytest.mark.parametrize("damage", ["empty", "garbage"])
def test_empty_or_corrupted_weights(tiny_model: str, tmp_path: Path, damage: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    model = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    weights = model / "model.safetensors"
    weights.write_bytes(b"" if damage == "empty" else os.urandom(300))
    assert main(_unlearn(str(model), tmp_path / "out")) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "weights" in line and str(model) in line
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a CPU-only torch")
def test_device_cuda_on_a_cpu_only_torch(tiny_model: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_unlearn(tiny_model, tmp_path / "out"), "--device", "cuda"]) == 2
    assert "--device cuda" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_with_resume_fails_before_the_work(
        tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "file"
    out.write_text("not a folder")
    assert main([*_unlearn(tiny_model, out), "--resume"]) == 2
    captured = capsys.readouterr()
    assert "not a folder" in one_line_error(captured.err)
    assert "unlearning" not in captured.out  # refused before any step
    assert out.read_text() == "not a folder"


@pytest.mark.skipif(not sys.platform.startswith("linux") or not Path("/sys").is_dir(),
                    reason="needs Linux sysfs (a place nobody can create folders in)")
def test_unwritable_out_fails_before_the_work(tiny_model: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = Path("/sys/fastngd-test-unwritable/run")
    assert main(_unlearn(tiny_model, out)) == 1
    captured = capsys.readouterr()
    assert "--out" in one_line_error(captured.err)
    assert "unlearning" not in captured.out


def test_full_disk_is_one_line(tiny_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    import fastngd.unlearn.job

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "model"))

    monkeypatch.setattr(fastngd.unlearn.job, "write_folder", full)
    assert main(_unlearn(tiny_model, tmp_path / "out")) == 1
    assert "No space left on device" in one_line_error(capsys.readouterr().err)


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _unlearn(str(tmp_path / "missing"), tmp_path / "x")
    assert main(["--debug", *argv]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "does not exist" in err
    assert main([*argv, "--debug"]) == 1  # also accepted after the command
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["unlearn", "--benchmark", "tofu-synthetic"],
    ["eval", "--benchmark", "tofu-synthetic"],
    ["finetune", "--benchmark", "tofu-synthetic"],
])
def test_data_dir_with_a_builtin_benchmark_is_refused(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / ("x.json" if argv[0] == "eval" else "x")
    assert main([*argv, "--data-dir", str(tmp_path), "--out", str(out)]) == 2
    assert "--data-dir does not apply" in one_line_error(capsys.readouterr().err, argv[0])
    assert not out.exists()


def test_finetune_embedded_on_a_hub_layout_needs_data_dir(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["finetune", "--benchmark", "tofu", "--out", str(tmp_path / "m")]) == 2
    assert "--data-dir" in one_line_error(capsys.readouterr().err, "finetune")
    assert main(["finetune", "--split", "retain", "--out", str(tmp_path / "m")]) == 2
    assert "--split" in one_line_error(capsys.readouterr().err, "finetune")
    assert not (tmp_path / "m").exists()


def test_finetune_overwrite_replaces_only_its_files(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from fastngd.models import training

    tiny = training.TrainingRecipe(epochs=1, batch_size=64, model={
        "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 2})
    monkeypatch.setattr(training, "default_recipe", lambda benchmark: tiny)
    out = tmp_path / "here"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "config.json").write_text("{}")
    assert main(["finetune", "--out", str(out), "--overwrite",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert (out / "notes.txt").read_text() == "mine"  # never rmtree'd
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"
    assert (out / "model.safetensors").stat().st_size > 0


@pytest.mark.parametrize("argv, flag", [
    (["reproduce", "digits", "--data-dir", "d"], "--data-dir"),
    (["reproduce", "tofu", "--limit", "5"], "--limit"),
    (["eval", "--benchmark", "muse-synthetic", "--max-new-tokens", "4"], "--max-new-tokens"),
    (["unlearn", "--benchmark", "muse-synthetic", "--forget", "forget05"], "--forget"),
])
def test_flags_that_do_not_apply_are_errors(argv: list[str], flag: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    command = " ".join(argv[:2]) if argv[0] == "reproduce" else argv[0]
    out = tmp_path / "out.json"
    assert main([*argv, "--out", str(out)]) == 2
    line = one_line_error(capsys.readouterr().err, command)
    assert flag in line and "does not apply" in line
    assert not out.exists()


def test_eval_hint_keeps_data_dir(tiny_model: str, tofu_dir: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main([*_unlearn(tiny_model, out), "--benchmark", "tofu", "--data-dir",
                 str(tofu_dir), "--forget", "forget05"]) == 0
    hint = capsys.readouterr().out.split("evaluate with:")[1]
    assert f"--data-dir {tofu_dir}" in hint and "--benchmark tofu" in hint
    assert "--forget forget05" in hint


def test_unlearning_does_not_read_the_perturbed_files(
        tiny_model: str, tofu_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    broken = tofu_dir / "forget10_perturbed" / "train.jsonl"
    rows = [json.loads(line) for line in broken.read_text().splitlines()]
    rows[0]["perturbed_answer"] = 7
    broken.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    argv = [*_unlearn(tiny_model, out), "--benchmark", "tofu", "--data-dir", str(tofu_dir)]
    assert main(argv) == 0
    capsys.readouterr()
    # evaluation warns that it goes on without the forget split's truth ratio
    assert main(["eval", "--model", str(out / "model"), "--benchmark", "tofu", "--data-dir",
                 str(tofu_dir), "--max-new-tokens", "2", "--max-examples", "3"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "warning" in err and "forget10_perturbed" in err


def test_muse_unlearning_reads_only_the_raw_texts(tiny_model: str, muse_dir: Path,
                                                  tmp_path: Path) -> None:
    for config in ("knowmem", "verbmem", "privleak"):
        shutil.rmtree(muse_dir / config)
    out = tmp_path / "run"
    assert main(["unlearn", "--model", tiny_model, "--benchmark", "muse-news", "--data-dir",
                 str(muse_dir), "--epochs", "1", "--batch-size", "4", "--out", str(out)]) == 0
    assert (out / "model" / "config.json").exists()


@pytest.mark.parametrize("damage", ["int-answer", "list-row", "non-utf8"])
def test_bad_data_rows_are_one_line_errors(tiny_model: str, tofu_dir: Path, tmp_path: Path,
                                           damage: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tofu_dir / "forget10" / "train.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    if damage == "int-answer":
        row = json.loads(lines[1])
        row["answer"] = 42
        lines[1] = (json.dumps(row) + "\n").encode()
    elif damage == "list-row":
        lines[1] = b'["a", "b"]\n'
    else:
        lines[1] = lines[1].replace(b"the", b"th\xff\xfee", 1) if b"the" in lines[1] else \
            b"\xff\xfe" + lines[1]
    path.write_bytes(b"".join(lines))
    out = tmp_path / "run"
    assert main([*_unlearn(tiny_model, out), "--benchmark", "tofu", "--data-dir",
                 str(tofu_dir)]) == 1
    assert "forget10" in one_line_error(capsys.readouterr().err)
    assert not out.exists()


def test_diverged_run_saves_the_last_finite_model(tiny_model: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["unlearn", "--model", tiny_model, "--method", "ga", "--no-autolr", "--lr",
                 "1e30", "--epochs", "2", "--out", str(out)]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "diverged at step 2" in line and "saved the model after step 1" in line
    assert "Try a smaller --lr, or turn AutoLR on" in line
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(out / "model")  # fastngd eval can read it
    assert all(torch.isfinite(p).all() for p in saved.parameters())


def test_files_follow_the_umask(tiny_model: str, tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        out = tmp_path / "run"
        assert main(_unlearn(tiny_model, out, "--keep-checkpoint")) == 0
    finally:
        os.umask(previous)
    for path in (out / "summary.json", out / "history.json", out / "model" / "config.json",
                 out / "checkpoint" / "checkpoint.pt", out / "checkpoint" / "checkpoint.pt.sha256"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE((out / "model").stat().st_mode) == 0o755


@pytest.mark.parametrize("damage", ["flipped", "truncated", "empty", "foreign"])
def test_damaged_checkpoint_on_resume(tiny_model: str, tmp_path: Path, damage: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(_unlearn(tiny_model, out, "--keep-checkpoint")) == 0
    path = out / "checkpoint" / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    if damage == "flipped":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        (out / "checkpoint" / "checkpoint.pt.sha256").unlink()
        torch.save({"weights": torch.zeros(3)}, path)
    capsys.readouterr()
    assert main([*_unlearn(tiny_model, out, "--keep-checkpoint"), "--resume"]) == 1
    captured = capsys.readouterr()
    line = one_line_error(captured.err)
    assert str(path) in line and "--overwrite" in line
    assert "steps in" not in captured.out


def test_messages_name_flags_not_arguments(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["data", "export", "tofu-synthetic", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert main(argv) == 2
    line = one_line_error(capsys.readouterr().err, "data export")
    assert "--overwrite" in line and "overwrite=True" not in line

"""The commands of the command line, run through ``main([...])`` with tiny settings."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastngd.cli import main

from .conftest import one_line_error


@pytest.mark.parametrize("argv", [
    [], ["demo"], ["finetune"], ["unlearn"], ["eval"], ["reproduce"], ["data", "export"],
])
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "usage: fastngd" in text
    if argv in (["unlearn"], ["reproduce"]):
        assert "--autolr, --no-autolr" in text and "--seeds" in text
    if argv == []:
        # the demo takes minutes, not "about 10 minutes"
        assert "5-8 minutes" in text and "10 minutes" not in text


def test_help_shows_the_config_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from fastngd.unlearn import UnlearnConfig

    with pytest.raises(SystemExit):
        main(["unlearn", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = UnlearnConfig()
    assert f"(default {defaults.epochs})" in text and f"(default {defaults.lr:g})" in text
    for flag in ("--eval-every", "--keep-best", "--lora-rank", "--keep-checkpoint", "--debug"):
        assert flag in text


def test_demo_tiny(tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--model", tiny_model, "--retain-model", tiny_model, "--out", str(out),
            "--methods", "ngdiff,gdiff-0.5,ngdiff-no-autolr", "--epochs", "1", "--jobs", "1",
            "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Table 1" in printed and "Table 3" in printed and "no unlearning" in printed
    assert "ForgetQ" in printed and "world facts" in printed
    results = json.loads((out / "results.json").read_text())
    # the target is its own reference here: identical truth ratios, KS p-value 1
    assert results["no_unlearn"]["forget_quality"] == pytest.approx(1.0)
    assert results["reference_model"] == tiny_model
    for entry in results["methods"].values():
        assert 0.0 <= entry["forget_quality"] <= 1.0
        assert set(entry["mia"]) == {"loss", "zlib", "min_k", "min_k_plus_plus"}
    assert set(results["methods"]) == {"ngdiff", "gdiff-0.5", "ngdiff-no-autolr"}
    keys = {"verbmem", "utility", "truth_ratio", "forget_rouge_l_recall",
            "retain_rouge_l_recall"}
    for entry in [*results["methods"].values(), results["no_unlearn"]]:
        assert keys <= set(entry)
    assert results["methods"]["ngdiff"]["autolr"] is True
    assert results["methods"]["gdiff-0.5"]["autolr"] is False
    assert results["unlearn_options"]["epochs"] == 1
    assert isinstance(results["seed"], int) and results["wall_seconds"] > 0
    for name in ("curves.png", "tradeoff.png", "autolr.png", "tables.txt", "curves.json"):
        assert (out / name).stat().st_size > 0, name
    # an existing output folder is never overwritten silently
    assert main(argv) == 2
    assert "not empty" in one_line_error(capsys.readouterr().err, "demo")


def test_demo_rejects_unknown_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path / "d"), "--methods", "magic"]) == 2
    assert "valid" in one_line_error(capsys.readouterr().err, "demo")
    assert not (tmp_path / "d").exists()


def _unlearn_argv(model: str, out: Path, *extra: str) -> list[str]:
    return ["unlearn", "--model", model, "--method", "npo", "--no-autolr", "--epochs", "1",
            "--lr", "0.01", "--out", str(out), *extra]


def test_unlearn_then_eval(tiny_model: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = _unlearn_argv(tiny_model, out, "--keep-checkpoint")
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "npo" and summary["autolr"] is False and summary["steps"] == 5
    assert summary["memory"]["trainable_parameters"] == summary["memory"]["parameters"] > 0
    check = summary["retain_check"]  # the run ends at its epoch: scored, never checked
    assert check["checked"] > 0 and check["log"] == [] and check["rounds"] == 0
    assert len(json.loads((out / "history.json").read_text())) == 5
    assert (out / "model" / "config.json").exists()
    assert (out / "checkpoint" / "checkpoint.pt").exists()
    assert (out / "checkpoint" / "checkpoint.pt.sha256").exists()
    assert main(argv) == 2  # existing folder
    assert main([*argv, "--resume"]) == 0  # a finished run resumes to itself
    capsys.readouterr()
    assert main([*argv[:-5], "--lr", "0.5", "--out", str(out), "--resume"]) == 2
    assert "another configuration" in capsys.readouterr().err
    report = tmp_path / "eval.json"
    assert main(["eval", "--model", str(out / "model"), "--max-new-tokens", "4",
                 "--max-examples", "4", "--out", str(report)]) == 0
    assert "Verbmem" in capsys.readouterr().out
    assert json.loads(report.read_text())["summary"]["utility"] is not None


def test_checkpoint_is_removed_after_success(tiny_model: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(_unlearn_argv(tiny_model, out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["history.json", "model", "summary.json"]
    capsys.readouterr()
    # nothing to resume: said plainly, before any work
    assert main([*_unlearn_argv(tiny_model, out), "--resume"]) == 1
    captured = capsys.readouterr()
    assert "nothing to resume" in one_line_error(captured.err)
    assert "unlearning" not in captured.out
    # --overwrite starts the run over (no "resume=True" advice from the library)
    assert main([*_unlearn_argv(tiny_model, out), "--overwrite"]) == 0


def test_unlearn_bad_method(tiny_model: str, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unlearn", "--model", tiny_model, "--method", "magic",
                 "--out", str(tmp_path / "x")]) == 2
    err = one_line_error(capsys.readouterr().err)
    assert "valid methods" in err and "ngdiff" in err
    assert not (tmp_path / "x").exists()


def test_bad_benchmark_lists_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["unlearn", "--benchmark", "nope", "--out", "x"])
    assert "tofu-synthetic" in capsys.readouterr().err


def test_reproduce_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "digits"
    assert main(["reproduce", "digits", "--methods", "ngdiff,gd", "--seeds", "0", "1",
                 "--limit", "300", "--epochs", "2", "--out", str(out)]) == 0
    agg = json.loads((out / "results.json").read_text())
    assert agg["seeds"] == [0, 1]
    assert agg["methods"]["ngdiff"]["train_forget_accuracy"]["n"] == 2
    assert (out / "seed1.json").exists() and "mean ± std" in capsys.readouterr().out
    assert main(["reproduce", "digits", "--methods", "nope", "--out",
                 str(tmp_path / "d2")]) == 2
    assert not (tmp_path / "d2").exists()


def test_eval_forget_quality_from_a_retain_model_or_a_reference_file(
        tiny_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["eval", "--model", tiny_model, "--max-new-tokens", "2", "--max-examples", "4"]
    first = tmp_path / "ref.json"
    assert main([*common, "--retain-model", tiny_model, "--retain-split", "retain90",
                 "--out", str(first)]) == 0
    printed = capsys.readouterr().out
    rows = [line.split()[0] for line in printed.splitlines() if line.startswith(tiny_model)]
    assert rows and "model" not in [line.split()[0] for line in printed.splitlines() if line]
    record = json.loads(first.read_text())
    assert record["label"] == tiny_model and record["reference"] == tiny_model
    assert record["summary"]["forget_quality"] == pytest.approx(1.0)  # its own reference
    assert record["result"]["aggregate"]["retain_split"]["n"] == 4
    assert record["result"]["settings"]["retain_split"] == "retain90"
    # the file written for the retain-only model is a reference for later evaluations
    assert main([*common, "--reference-truth-ratios", str(first)]) == 0
    assert "ForgetQ" in capsys.readouterr().out
    # ... but only on the same questions
    assert main([*common, "--forget-split", "forget05", "--reference-truth-ratios",
                 str(first)]) == 1
    assert "other questions" in one_line_error(capsys.readouterr().err, "eval")


@pytest.mark.parametrize("extra, match", [
    (["--retain-model", "m", "--reference-truth-ratios", "f"], "not both"),
    (["--retain-split", "retain"], "--retain-split retain is not a retain split"),
    (["--retain-split", "retain80"], "supported: retain90, retain95, retain99"),
    (["--benchmark", "muse-synthetic", "--retain-model", "m"], "--retain-model does not apply"),
])
def test_eval_reference_flags_refused(extra: list[str], match: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", *extra]) == 2
    assert match in one_line_error(capsys.readouterr().err, "eval")

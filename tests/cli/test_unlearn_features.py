"""``fastngd unlearn --eval-every/--keep-best`` and ``--lora-rank`` end to end."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from fastngd.cli import main


def test_eval_every_and_keep_best(tiny_model: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["unlearn", "--model", tiny_model, "--epochs", "2", "--no-autolr",
                 "--eval-every", "3", "--keep-best", "retain_rouge_l_recall:max",
                 "--out", str(out)]) == 0
    evals = json.loads((out / "evals.json").read_text())
    assert [e["step"] for e in evals] == [0, 3, 6, 9, 10]
    summary = json.loads((out / "summary.json").read_text())
    best = summary["best"]
    scores = [e["retain_rouge_l_recall"] for e in evals]
    assert best["score"] == max(scores)
    assert best["step"] == evals[scores.index(max(scores))]["step"]  # ties: the earliest
    assert (out / "evals.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "best-model" / "config.json").exists()
    assert "best-model (step" in capsys.readouterr().out


def test_lora_rank(tiny_model: str, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    out = tmp_path / "run"
    assert main(["unlearn", "--model", tiny_model, "--epochs", "1", "--lora-rank", "2",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    memory = summary["memory"]
    assert 0 < memory["trainable_parameters"] < memory["parameters"]
    assert summary["options"]["lora_rank"] == 2
    assert (out / "model" / "adapter" / "adapter_config.json").exists()
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out / "model")  # what fastngd eval reads
    original = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    changed = [n for (n, a), b in zip(merged.named_parameters(), original.parameters())
               if not torch.equal(a, b)]
    assert changed and all("proj" in n for n in changed)  # only adapted layers moved


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_base_adamw_resumes_bit_identically(tiny_model: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """``--base adamw``: an interrupted run (after the epoch-1 checkpoint) continued with
    ``--resume`` ends with the weights of the uninterrupted run; the base is recorded."""
    from fastngd.unlearn import loop

    argv = ["unlearn", "--model", tiny_model, "--epochs", "2", "--lr", "0.01", "--base",
            "adamw", "--weight-decay", "0.05", "--betas", "0.8", "0.99", "--backend", "torch"]
    assert main([*argv, "--out", str(tmp_path / "straight")]) == 0
    summary = json.loads((tmp_path / "straight" / "summary.json").read_text())
    assert summary["options"]["optimizer_options"] == {"base": "adamw", "weight_decay": 0.05,
                                                       "betas": [0.8, 0.99]}
    assert summary["options"]["backend"] == "torch"

    original_step = loop._Run.step

    def interrupted(self: loop._Run) -> dict:
        if self.step_count == 7:
            raise KeyboardInterrupt
        return original_step(self)

    monkeypatch.setattr(loop._Run, "step", interrupted)
    out = tmp_path / "resumed"
    assert main([*argv, "--out", str(out)]) == 130
    monkeypatch.setattr(loop._Run, "step", original_step)
    assert (out / "checkpoint" / "checkpoint.pt").exists()
    capsys.readouterr()
    # resuming with another base is refused, the difference named
    other = [a if a != "adamw" else "adam" for a in argv]
    assert main([*other, "--out", str(out), "--resume"]) == 2
    assert "'base': 'adamw'" in capsys.readouterr().err
    assert main([*argv, "--out", str(out), "--resume"]) == 0
    straight, resumed = _weights(tmp_path / "straight" / "model"), _weights(out / "model")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    history = json.loads((out / "history.json").read_text())
    assert history == json.loads((tmp_path / "straight" / "history.json").read_text())


@pytest.mark.parametrize("flags, match", [
    (["--base", "adam", "--momentum", "0.9"], "--momentum"),
    (["--momentum", "0.5"], "not to base sgd"),
    (["--base", "adamw", "--betas", "0.9", "1.5"], r"betas\[1\] must be in \[0, 1\)"),
    (["--base", "adam", "--eps", "-1"], "eps must be >= 0"),
])
def test_bad_base_flags_fail_before_the_work(tiny_model: str, tmp_path: Path, flags: list[str],
                                             match: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import re

    from .conftest import one_line_error

    assert main(["unlearn", "--model", tiny_model, *flags, "--out", str(tmp_path / "x")]) == 2
    assert re.search(match, one_line_error(capsys.readouterr().err))
    assert not (tmp_path / "x").exists()
    assert main(["reproduce", "tofu", "--model", tiny_model, *flags,
                 "--out", str(tmp_path / "y")]) == 2
    assert re.search(match, one_line_error(capsys.readouterr().err, "reproduce tofu"))


@pytest.mark.parametrize("flags, lr, base", [
    ([], 0.1, "sgd"),
    (["--base", "adam"], 3e-4, "adam"),
    (["--base", "adamw", "--weight-decay", "0.1"], 3e-4, "adamw"),
    (["--base", "momentum"], 0.01, "momentum"),
    (["--base", "adam", "--lr", "1e-3"], 1e-3, "adam"),
])
def test_base_without_lr_takes_that_bases_default_rate(flags: list[str], lr: float,
                                                       base: str) -> None:
    from fastngd.cli import _build_parser, _config_from_args
    from fastngd.unlearn import BASE_LR

    args = _build_parser().parse_args(["unlearn", "--model", "m", *flags, "--out", "o"])
    config = _config_from_args(args)
    assert config.lr == pytest.approx(lr)
    assert config.base == base
    assert "--lr" in flags or config.lr == BASE_LR[base]


@pytest.mark.parametrize("flags, rise, min_steps", [
    ([], 30.0, 60),
    (["--stop-rise", "off"], None, 60),
    (["--stop-rise", "5", "--stop-min-steps", "10"], 5.0, 10),
])
def test_stop_flags_set_the_stopping_rule(flags: list[str], rise: float | None,
                                          min_steps: int) -> None:
    from fastngd.cli import _build_parser, _config_from_args

    args = _build_parser().parse_args(["unlearn", "--model", "m", *flags, "--out", "o"])
    config = _config_from_args(args)
    assert config.stop_rise == rise and config.stop_min_steps == min_steps


@pytest.mark.parametrize("flags, rise, q", [
    ([], None, 0.0),
    (["--stop-example-rise", "12", "--stop-quantile", "0.1"], 12.0, 0.1),
    (["--stop-example-rise", "off"], None, 0.0),
])
def test_example_stop_flags_set_the_per_example_rule(flags: list[str], rise: float | None,
                                                     q: float) -> None:
    from fastngd.cli import _build_parser, _config_from_args
    from fastngd.unlearn import UnlearnConfig

    args = _build_parser().parse_args(["unlearn", "--model", "m", "--forget-target", "ascent",
                                       *flags, "--out", "o"])
    config = _config_from_args(args)
    default = UnlearnConfig()
    want_rise = rise if flags else default.stop_example_rise
    want_q = q if flags else default.stop_quantile
    assert (config.stop_example_rise, config.stop_quantile) == (want_rise, want_q)
    assert config.stop_rise == default.stop_rise


@pytest.mark.parametrize("flags, target, gap", [
    ([], "refuse", math.log(2.0)),
    (["--forget-target", "ascent"], "ascent", math.log(2.0)),
    (["--stop-gap", "0.1"], "refuse", 0.1),
    (["--stop-gap", "off"], "refuse", None),
])
def test_target_flags_set_the_target_and_the_gap_rule(flags: list[str], target: str,
                                                      gap: float | None) -> None:
    from fastngd.cli import _build_parser, _config_from_args
    from fastngd.unlearn import ForgetGapStop, ForgetLossStop, stopping_rule

    args = _build_parser().parse_args(["unlearn", "--model", "m", *flags, "--out", "o"])
    config = _config_from_args(args)
    assert (config.forget_target, config.stop_gap) == (target, gap)
    rule = stopping_rule(config)
    if target == "ascent":
        assert isinstance(rule, ForgetLossStop)
    elif gap is None:
        assert rule is None
    else:
        assert isinstance(rule, ForgetGapStop) and rule.gap == gap


@pytest.mark.parametrize("flags, want", [
    ([], (1024, 4, 5)),
    (["--retain-check", "200", "--retain-repair-steps", "2", "--retain-repair-rounds", "0"],
     (200, 2, 0)),
    (["--retain-check", "off"], (None, 4, 5)),
])
def test_retain_check_flags_set_the_check(flags: list[str], want: tuple) -> None:
    from fastngd.cli import _build_parser, _config_from_args

    args = _build_parser().parse_args(["unlearn", "--model", "m", *flags, "--out", "o"])
    config = _config_from_args(args)
    assert (config.retain_check, config.retain_repair_steps,
            config.retain_repair_rounds) == want


@pytest.mark.parametrize("flags", [["--retain-check", "many"], ["--retain-check", "0"],
                                   ["--retain-repair-steps", "0"]])
def test_bad_retain_check_flags_are_refused(flags: list[str]) -> None:
    from fastngd.cli import _build_parser, _config_from_args

    with pytest.raises((SystemExit, ValueError)):
        args = _build_parser().parse_args(["unlearn", "--model", "m", *flags, "--out", "o"])
        _config_from_args(args)


def test_an_unknown_forget_target_is_refused_by_the_parser(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["unlearn", "--forget-target", "forget", "--out", str(tmp_path / "x")])
    assert info.value.code == 2


@pytest.mark.parametrize("flags", [["--stop-rise", "-1"], ["--stop-min-steps", "-3"],
                                   ["--stop-example-rise", "0"], ["--stop-quantile", "1"],
                                   ["--stop-gap", "0"], ["--stop-example-rise", "30"]])
def test_bad_stop_flags_are_usage_errors(tiny_model: str, tmp_path: Path,
                                         flags: list[str]) -> None:
    assert main(["unlearn", "--model", tiny_model, *flags, "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_stop_rise_that_is_not_a_number_is_refused_by_the_parser(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["unlearn", "--stop-rise", "soon", "--out", str(tmp_path / "x")])
    assert info.value.code == 2
    assert "a number of nats or 'off'" in capsys.readouterr().err

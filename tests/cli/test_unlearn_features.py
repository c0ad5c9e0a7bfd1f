"""``fastngd unlearn --eval-every/--keep-best`` and ``--lora-rank`` end to end."""
from __future__ import annotations

import json
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

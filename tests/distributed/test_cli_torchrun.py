"""``fastngd unlearn`` under ``torchrun`` (2 gloo CPU processes, the model wrapped in DDP).

The 2-rank run must write one complete output folder (rank 0 writes it), follow the
single-process run up to rounding (each rank takes half of every batch and divides its
summed token losses by the whole batch's token count over both ranks), record its world
size in the checkpoint and refuse to be resumed by a single process.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from fastngd.cli import main
from fastngd.unlearn import load_checkpoint
from tests.reproduce.conftest import save_tiny_model

from .launch import run_ranks

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo"
)
WORLD = 2


def _argv(model: str, out: Path) -> list[str]:
    return ["unlearn", "--model", model, "--method", "ngdiff", "--epochs", "1", "--lr", "0.01",
            "--threads", "1", "--keep-checkpoint", "--out", str(out)]


def test_cli_unlearn_under_torchrun(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = str(save_tiny_model(tmp_path / "model"))
    out = tmp_path / "ranks"
    job = run_ranks(
        ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
         "-m", "fastngd.cli", *_argv(model, out)],
        WORLD, tmp_path / "logs", timeout=240, per_rank=False,
    )
    assert job.ok, job.report()
    assert job.logs[0].count("unlearning tofu-synthetic/forget10") == 1  # rank 0 prints
    assert f"{WORLD} ranks" in job.logs[0]
    history = json.loads((out / "history.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == len(history) == 5
    assert (out / "model" / "config.json").exists()
    saved = load_checkpoint(out / "checkpoint")
    assert saved is not None and saved["config"]["world_size"] == WORLD
    assert not any(k.startswith("module.") for k in saved["model"])

    single = tmp_path / "single"
    assert main(_argv(model, single)) == 0
    reference = json.loads((single / "history.json").read_text())
    assert len(reference) == len(history)
    # token losses summed over both ranks: exact up to float32 rounding of terms of size
    # ~1-10 (the forget value is a difference of two such terms, hence the absolute part)
    for got, ref in zip(history, reference):
        for key in ("loss_retain", "loss_forget", "norm_retain", "norm_forget", "lr"):
            assert math.isclose(got[key], ref[key], rel_tol=5e-7, abs_tol=2e-6), (key, got, ref)
    # the 2-rank checkpoint holds the model the single process would load
    from transformers import AutoModelForCausalLM

    unlearned = AutoModelForCausalLM.from_pretrained(out / "model")
    for name, value in unlearned.state_dict().items():
        if name in saved["model"]:
            torch.testing.assert_close(value, saved["model"][name], msg=name)

    capsys.readouterr()
    assert main([*_argv(model, out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"world size {WORLD}" in err and "world size 1" in err

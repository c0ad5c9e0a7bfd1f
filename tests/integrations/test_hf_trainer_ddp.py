"""NGDiffTrainer under DDP: 2 gloo CPU processes started with a ``torchrun`` environment."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from tests.distributed.launch import run_ranks

from . import hf_ddp_worker

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo"
)
WORLD = 2


def test_ngdiff_trainer_under_ddp(tmp_path: Path) -> None:
    job = run_ranks([str(Path(hf_ddp_worker.__file__)), str(tmp_path)], WORLD, tmp_path, timeout=240)
    assert job.ok, job.report()
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for out in ranks:
        assert out["world_size"] == WORLD and out["wrapped"] == "DistributedDataParallel"
        assert out["num_steps"] == out["calls"] == hf_ddp_worker.STEPS  # one update per step
        assert out["after"][0] > out["before"][0] + 0.2  # forget loss up
        assert len(out["logs"]) == hf_ddp_worker.STEPS // 2
        assert all("retain_loss" in log and "forget_loss" in log for log in out["logs"])
    # every rank took the same steps (DDP-averaged gradients, rank-averaged losses)
    assert torch.equal(ranks[0]["params"], ranks[1]["params"])
    assert ranks[0]["lr_scale"] == ranks[1]["lr_scale"] and ranks[0]["logs"] == ranks[1]["logs"]
    assert (tmp_path / "run" / f"checkpoint-{hf_ddp_worker.STEPS}" / "optimizer.pt").exists()

"""``fastngd.unlearn.unlearn`` under ``torchrun`` (2 gloo CPU processes, DDP and FSDP2).

The launcher is ``python -m torch.distributed.run --standalone --nproc_per_node 2``, i.e.
``torchrun``; each rank's loop history must equal the single-process history.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from . import unlearn_worker
from .launch import run_ranks

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo"
)
WORLD = 2


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("torchrun")
    job = run_ranks(
        ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
         str(Path(unlearn_worker.__file__)), str(out)],
        WORLD, out, timeout=180, per_rank=False,
    )
    assert job.ok, job.report()
    return [torch.load(out / f"unlearn{r}.pt", weights_only=False) for r in range(WORLD)]


_SINGLE: dict[bool, list[dict]] = {}


def single(root_param: bool) -> list[dict]:
    assert not dist.is_initialized()
    if root_param not in _SINGLE:
        _SINGLE[root_param] = unlearn_worker.run("single", root_param)
    return _SINGLE[root_param]


@pytest.mark.parametrize(
    "engine",
    unlearn_worker.ENGINES,
)
def test_unlearn_under_torchrun_matches_single_process(ranks, engine: str) -> None:
    single_history = single("root" in engine)
    n_steps = 2 * 8 // 4  # epochs × forget examples / batch size
    assert len(single_history) == n_steps
    assert single_history[-1]["loss_forget"] > single_history[0]["loss_forget"]
    for rank in range(WORLD):
        history = ranks[rank][engine]
        assert not isinstance(history, str), f"rank {rank}, {engine}:\n{history}"
        assert len(history) == n_steps
        for step, (got, ref) in enumerate(zip(history, single_history)):
            for key in unlearn_worker.KEYS:
                assert math.isclose(got[key], ref[key], rel_tol=1e-6, abs_tol=1e-9), (
                    engine, rank, step, key, got[key], ref[key]
                )
    assert ranks[0][engine] == ranks[1][engine]

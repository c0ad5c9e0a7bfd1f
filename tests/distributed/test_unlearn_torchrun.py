"""``fastngd.unlearn.unlearn`` under ``torchrun`` (2 gloo CPU processes, DDP and FSDP2).

The launcher is ``python -m torch.distributed.run --standalone --nproc_per_node 2``, i.e.
``torchrun``. Each rank reads only its half (rows ``rank::2``) of every forget and retain
batch, yet its loop history and final parameters must equal the single-process full-batch
run; a run checkpointed mid-epoch (rank 0 writes, the gathered state) and resumed must give
the same continuation as the uninterrupted run.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

from fastngd.unlearn import CHECKPOINT_NAME

from . import unlearn_worker
from .launch import run_ranks

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo"
)
WORLD = 2
N_STEPS = 2 * 8 // 4  # epochs × forget examples / batch size


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("torchrun")
    job = run_ranks(
        ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
         str(Path(unlearn_worker.__file__)), str(out)],
        WORLD, out, timeout=240, per_rank=False,
    )
    assert job.ok, job.report()
    return [torch.load(out / f"unlearn{r}.pt", weights_only=False) for r in range(WORLD)]


_SINGLE: dict[str, dict[str, Any]] = {}


def single(engine: str) -> dict[str, Any]:
    """The single-process run (full batches) matching ``engine``: with the root parameter
    for ``fsdp2-root*``, with the AdamW base for ``*-adamw``."""
    assert not dist.is_initialized()
    name = ("single-adamw" if "adamw" in engine else "single-repair" if "repair" in engine
            else "single")
    key = f"{name}:{'root' in engine}"
    if key not in _SINGLE:
        _SINGLE[key] = unlearn_worker.run_logged(name, "root" in engine)
    return _SINGLE[key]


def _history(ranks: list[dict], rank: int, name: str) -> list[dict]:
    history = ranks[rank][name]
    assert not isinstance(history, str), f"rank {rank}, {name}:\n{history}"
    return history


def _assert_close_histories(got: list[dict], ref: list[dict], what: Any,
                            n_steps: int = N_STEPS) -> None:
    assert len(got) == len(ref) == n_steps, what
    for step, (a, b) in enumerate(zip(got, ref)):
        for key in unlearn_worker.KEYS:
            assert math.isclose(a[key], b[key], rel_tol=1e-6, abs_tol=1e-9), (
                what, step, key, a[key], b[key]
            )
        assert a["forget_indices"] == b["forget_indices"], (what, step)
        assert a["forget_losses"] == pytest.approx(b["forget_losses"], rel=1e-5, abs=1e-7), (
            what, step)


def _assert_close_params(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(ref)
    for key, value in ref.items():
        torch.testing.assert_close(got[key], value, rtol=1e-7, atol=1e-9, msg=key)


@pytest.mark.parametrize("engine", unlearn_worker.ENGINES)
def test_unlearn_under_torchrun_matches_single_process(ranks, engine: str) -> None:
    ref = single(engine)
    assert len(ref["history"]) == N_STEPS
    assert ref["history"][-1]["loss_forget"] > ref["history"][0]["loss_forget"]
    for rank in range(WORLD):
        _assert_close_histories(_history(ranks, rank, engine), ref["history"], (engine, rank))
        _assert_close_params(ranks[rank][f"{engine}:final"], ref["final"])
    assert ranks[0][engine] == ranks[1][engine]


@pytest.mark.parametrize("engine", unlearn_worker.ENGINES)
def test_each_rank_reads_its_share_of_every_batch(ranks, engine: str) -> None:
    full = single(engine)["shares"]
    assert len(full) == N_STEPS
    assert all(len(f) == 4 and len(r) == 4 for f, r in full)  # batch_size 4, retain 4
    for rank in range(WORLD):
        _history(ranks, rank, engine)
        shares = ranks[rank][f"{engine}:shares"]
        assert len(shares) == N_STEPS
        for step, ((f_got, r_got), (f_all, r_all)) in enumerate(zip(shares, full)):
            assert f_got == f_all[rank::WORLD], (engine, rank, step, f_got, f_all)
            assert r_got == r_all[rank::WORLD], (engine, rank, step, r_got, r_all)


@pytest.mark.parametrize("engine", unlearn_worker.REPAIRED)
def test_the_retain_check_repairs_under_torchrun_as_in_one_process(ranks, engine: str) -> None:
    """Every rank takes the same check decisions as the single process, and reads its share
    of each repair batch (the broken examples first)."""
    ref = single(engine)
    assert ref["check"]["rounds"] >= 1 and ref["check"]["log"][-1]["broken"] == 0
    repairs = [h["retain_repair"] for h in ref["history"]]
    assert sum(r > 0 for r in repairs) == 4 * ref["check"]["rounds"]
    for rank in range(WORLD):
        _assert_close_histories(_history(ranks, rank, engine), ref["history"], (engine, rank),
                                n_steps=len(ref["history"]))
        _assert_close_params(ranks[rank][f"{engine}:final"], ref["final"])
        assert ranks[rank][f"{engine}:check"] == ref["check"]
        # the reads of a check (after step k's callbacks) land in step k + 1's log
        checked = {entry["step"] for entry in ref["check"]["log"]}
        for step, ((_, r_got), (_, r_all)) in enumerate(zip(ranks[rank][f"{engine}:shares"],
                                                           ref["shares"])):
            if step not in checked:
                assert r_got == r_all[rank::WORLD], (engine, rank, step)
        assert len(checked) < len(ref["shares"]) - 2


@pytest.mark.parametrize("engine", unlearn_worker.REPAIRED)
def test_the_ranks_share_the_retain_checks(ranks, engine: str) -> None:
    """Each check's examples are split between the ranks in whole batches: together they
    score every example the single process scores, each rank at most its turns' batches."""
    ref = single(engine)
    size = unlearn_worker.SETTINGS["retain_batch_size"]
    steps = [entry["step"] for entry in ref["check"]["log"] if entry["step"] < len(ref["shares"])]
    assert steps
    for step in steps:
        scored = ref["shares"][step][1][:-size]  # the check's reads, then the step's batch
        turns = -(-len(scored) // size // WORLD)
        assert len(scored) > size, (engine, step)  # more than one batch: there is work to share
        seen: set[int] = set()
        for rank in range(WORLD):
            reads = ranks[rank][f"{engine}:shares"][step][1][:-(size // WORLD)]
            assert len(reads) <= turns * size < len(scored), (engine, rank, step)
            seen |= set(reads)
        assert seen == set(scored), (engine, step)


@pytest.mark.parametrize("engine", unlearn_worker.RESUMED)
def test_checkpoint_and_resume_under_torchrun(ranks, engine: str) -> None:
    name = f"{engine}-resume"
    ref = single(engine)
    for rank in range(WORLD):
        resumed = _history(ranks, rank, name)
        uninterrupted = _history(ranks, rank, engine)
        assert resumed == uninterrupted, (engine, rank)
        _assert_close_histories(resumed, ref["history"], (name, rank))
        final, straight = ranks[rank][f"{name}:final"], ranks[rank][f"{engine}:final"]
        assert sorted(final) == sorted(straight)
        assert all(torch.equal(final[k], straight[k]) for k in final), (engine, rank)
        assert ranks[rank][f"{name}:world"] == WORLD
        # AdamW's moments are in the checkpoint whole (gathered from the FSDP2 shards)
        expected = sorted([(3,), (3, 8), (8,), (8, 5)]) if "adamw" in engine else []
        assert ranks[rank][f"{name}:moments"] == expected
        assert ranks[rank][f"{name}:leftovers"] == [CHECKPOINT_NAME, CHECKPOINT_NAME + ".sha256"]
        assert ranks[rank][f"{name}:shares"] == ranks[rank][f"{engine}:shares"][:unlearn_worker.STOP_AT]
    # only rank 0 writes: at the epoch end (step 2), at the stop (3) and at the end (4)
    assert ranks[0][f"{name}:saves"] == 3
    assert ranks[1][f"{name}:saves"] == 0


def test_failed_checkpoint_write_fails_every_rank(ranks) -> None:
    """Rank 0 cannot write: it raises its error, the other rank learns of it (no hang)."""
    errors = [ranks[rank]["ddp-failed-write:error"] for rank in range(WORLD)]
    assert errors[0] == "OSError: disk full (simulated)"
    assert errors[1] == (
        "RankFailed: rank 0 could not write the checkpoint: OSError: disk full (simulated)"
    )

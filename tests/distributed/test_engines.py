"""NGDiffOptimizer under DDP and FSDP2 (gloo, 2 CPU processes) against one process.

One 2-rank job (``worker.py``, started like ``torchrun`` by ``launch.py``) runs every
scenario; the single-process reference runs in this process with the full batches. Per step
the gathered parameters and the step statistics must agree, the optimizer must issue exactly
one ``all_reduce`` (5 numbers, plus 3 per sharded tensor for a per-tensor rule) per step plus
one (2 numbers) on GeN steps, a base whose products ``g·u`` need summing over shards adding 2
numbers (to the GeN collective, or in one of their own), and a NaN seen by one rank only must
make every rank skip the same step.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist

from . import worker
from .launch import run_ranks

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo"
)

WORLD = 2
BUCKET_VIEW = "ddp-bucket-view-gen"
MATCHED = [name for name in worker.SCENARIOS if name != BUCKET_VIEW]
STAT_FIELDS = (
    "loss_retain", "loss_forget", "norm_retain", "norm_forget", "cosine",
    "weight_retain", "weight_forget", "lr_scale", "skipped", "lr_updated",
    "retain_dot_update", "forget_dot_update", "gen_outcome",
)
#: tensors of the scenarios' model (two Linear layers), all sharded under FSDP2.
N_TENSORS = 4


def expected_all_reduce_sizes(sc: worker.Scenario, gen_step: bool) -> list[int]:
    """The collectives of one step: the Gram reduction (with per-tensor rows of sharded
    tensors for a per-tensor rule), the GeN probes, and the products of sharded tensors
    unless they follow from the Gram (sgd, linear rule, no weight decay)."""
    sharded = sc.engine == "fsdp2"
    first = 5 + (3 * N_TENSORS if sharded and sc.rule == "surgery_pcgrad" else 0)
    products = sharded and sc.base != "sgd"
    if gen_step:
        return [first, 4 if products else 2]
    return [first, 2] if products else [first]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("gloo")
    job = run_ranks(
        [str(Path(worker.__file__)), str(out), *worker.SCENARIOS, "layouts"], WORLD, out,
        timeout=180,
    )
    assert job.ok, job.report()
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


_REFERENCE: dict[str, dict[str, Any]] = {}


def reference(name: str) -> dict[str, Any]:
    """The single-process run of scenario ``name`` (full batches, no process group)."""
    assert not (dist.is_available() and dist.is_initialized())
    if name not in _REFERENCE:
        _REFERENCE[name] = worker.run_scenario(name)
    return _REFERENCE[name]


def records(ranks: list[dict[str, Any]], name: str, rank: int) -> list[dict[str, Any]]:
    result = ranks[rank][name]
    assert not isinstance(result, str), f"rank {rank} failed in {name}:\n{result}"
    return result["records"]


def close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("name", MATCHED)
@pytest.mark.parametrize("rank", range(WORLD))
def test_matches_single_process_step_by_step(ranks, name: str, rank: int) -> None:
    got, ref = records(ranks, name, rank), reference(name)["records"]
    assert len(got) == len(ref) == worker.STEPS + 1
    for step, (g, r) in enumerate(zip(got, ref)):
        torch.testing.assert_close(
            g["params"], r["params"], rtol=1e-10, atol=1e-12,
            msg=lambda m, step=step: f"{name}, rank {rank}, after step {step}: {m}",
        )
        for field in STAT_FIELDS if step else ():
            assert close(g[field], r[field]), (name, rank, step, field, g[field], r[field])


@pytest.mark.parametrize("name", list(worker.SCENARIOS))
def test_ranks_hold_identical_parameters(ranks, name: str) -> None:
    first = records(ranks, name, 0)
    for rank in range(1, WORLD):
        for a, b in zip(first, records(ranks, name, rank)):
            assert torch.equal(a["params"], b["params"])
            assert a.get("lr_scale") == b.get("lr_scale")
            assert a.get("skipped") == b.get("skipped")


@pytest.mark.parametrize("name", list(worker.SCENARIOS))
def test_one_all_reduce_per_step_two_on_gen_steps(ranks, name: str) -> None:
    for rank in range(WORLD):
        for step, rec in enumerate(records(ranks, name, rank)[1:]):
            expected = expected_all_reduce_sizes(worker.SCENARIOS[name], rec["gen_step"])
            assert rec["all_reduce_sizes"] == expected, (name, rank, step)
    assert any(rec["gen_step"] for rec in records(ranks, name, 0)[1:]) == worker.SCENARIOS[name].autolr


def test_single_process_issues_no_collective() -> None:
    for rec in reference("fsdp2-ngdiff-gen")["records"][1:]:
        assert rec["all_reduce_sizes"] == []


@pytest.mark.parametrize("name", ["ddp-nan-loss", "fsdp2-nan-loss", "fsdp2-nan-shard"])
def test_nan_on_one_rank_skips_the_step_on_every_rank(ranks, name: str) -> None:
    for rank in range(WORLD):
        recs = records(ranks, name, rank)
        skipped = [rec["skipped"] for rec in recs[1:]]
        assert skipped == [step == worker.BAD_STEP for step in range(worker.STEPS)], (rank, skipped)
        before, after = recs[worker.BAD_STEP], recs[worker.BAD_STEP + 1]
        assert torch.equal(before["params"], after["params"])
        assert after["lr_scale"] == before["lr_scale"]
        assert after["num_steps"] == before["num_steps"] == worker.BAD_STEP
        assert recs[-1]["num_steps"] == worker.STEPS - 1
        # the step after the skipped one moves the parameters again
        assert not torch.equal(after["params"], recs[worker.BAD_STEP + 2]["params"])


@pytest.mark.parametrize("name", ["ddp-nan-probe", "fsdp2-nan-probe"])
def test_nan_probe_on_one_rank_blocks_the_step_on_every_rank(ranks, name: str) -> None:
    """A non-finite probe loss on one rank: every rank keeps θ, halves the rate and says so."""
    step = worker.BAD_PROBE_STEP
    for rank in range(WORLD):
        recs = records(ranks, name, rank)
        rec, prev = recs[step + 1], recs[step]
        assert rec["gen_step"] and not rec["skipped"] and not rec["lr_updated"]
        assert rec["gen_outcome"] == 3 and rec["lr"] == 0.0
        assert rec["lr_scale"] == prev["lr_scale"] / 2
        assert torch.equal(rec["params"], prev["params"])  # the step is not taken
        assert any(math.isnan(x) for x in rec["probe_losses"])
        assert not torch.equal(recs[-1]["params"], rec["params"])  # later steps move again
    clean = records(ranks, name.replace("nan-probe", "ngdiff-gen"), 0)[step + 1]
    assert clean["lr_updated"], "the unpoisoned run must accept the fit at that step"


def test_dtensor_layouts(ranks) -> None:
    for rank in range(WORLD):
        out = ranks[rank]["layouts"]
        assert not isinstance(out, str), out
        assert out["world_size"] == WORLD
        assert (out["plain"], out["shard"], out["replicate"]) == (False, True, False)
        assert out["local_shares_storage"]
        assert out["partial"].startswith("NotImplementedError")
        assert out["mesh2d"].startswith("NotImplementedError")
        assert out["reshard_count"] == 3  # two Linear layers and the root


def test_reshard_fsdp_is_a_no_op_without_fsdp() -> None:
    from torch import nn

    from fastngd.distributed import reshard_fsdp

    assert reshard_fsdp(nn.Sequential(nn.Linear(2, 2), nn.Tanh())) == 0


@pytest.mark.parametrize("rank", range(WORLD))
def test_ddp_gradient_as_bucket_view(ranks, rank: int) -> None:
    got, ref = records(ranks, BUCKET_VIEW, rank), reference(BUCKET_VIEW)["records"]
    for g, r in zip(got, ref):
        torch.testing.assert_close(g["params"], r["params"], rtol=1e-10, atol=1e-12)

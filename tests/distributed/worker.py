"""Scenarios run by every rank of a gloo job, and (with ``world=1``) as the single-process
reference in the test process itself.

Run as ``python worker.py OUT_DIR SCENARIO [SCENARIO ...]`` under a ``torchrun``-style
environment; each rank writes ``OUT_DIR/rank{r}.pt``: ``{scenario: record or error text}``.

The task: a float64 two-layer network, a retain batch of 16 and a forget batch of 8 examples.
Rank ``r`` of ``w`` gets rows ``r::w`` of both batches; every loss is a mean, so the rank
average of the losses (what the optimizer reduces) and of the gradients (what DDP and FSDP2
reduce) equal the full-batch ones of the single process.
"""
from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F

from fastngd import NGDiffOptimizer
from fastngd import distributed as fdist

STEPS = 6
AUTOLR_EVERY = 2
BAD_STEP = 3  # the step at which a poisoned scenario injects NaN on the last rank
BAD_PROBE_STEP = 2  # a GeN step (calls % AUTOLR_EVERY == 0)


@dataclass(frozen=True)
class Scenario:
    """``engine``: "ddp", "ddp-bucket-view" or "fsdp2"; ``poison``: None, "loss" (NaN forget
    loss value), "probe" (NaN retain loss in the GeN probes) or "shard" (NaN in one element of
    the local forget-gradient shard); ``root_param``: the FSDP2 root module owns a parameter
    (1 element, so one rank holds an empty shard); ``reshard``: closures call
    ``reshard_fsdp(model)``; ``explicit_root``: ``fully_shard(root, reshard_after_forward=True)``;
    ``rule`` and ``base``: the optimizer's.
    """

    engine: str
    autolr: bool
    poison: str | None = None
    root_param: bool = False
    reshard: bool = False
    explicit_root: bool = False
    rule: str = "ngdiff"
    base: str = "sgd"


SCENARIOS: dict[str, Scenario] = {}
for _engine in ("ddp", "fsdp2"):
    SCENARIOS[f"{_engine}-ngdiff"] = Scenario(_engine, False)
    SCENARIOS[f"{_engine}-ngdiff-gen"] = Scenario(_engine, True)
    SCENARIOS[f"{_engine}-nan-loss"] = Scenario(_engine, True, "loss")
    SCENARIOS[f"{_engine}-nan-probe"] = Scenario(_engine, True, "probe")
SCENARIOS["fsdp2-nan-shard"] = Scenario("fsdp2", True, "shard")
SCENARIOS["fsdp2-root-param-gen"] = Scenario("fsdp2", True, root_param=True, reshard=True)
SCENARIOS["fsdp2-root-param-explicit-gen"] = Scenario(
    "fsdp2", True, root_param=True, explicit_root=True
)
SCENARIOS["ddp-bucket-view-gen"] = Scenario("ddp-bucket-view", True)
for _engine in ("ddp", "fsdp2"):
    # per-tensor weights from per-tensor Gram rows (reduced over ranks when sharded)
    SCENARIOS[f"{_engine}-surgery-pcgrad-gen"] = Scenario(_engine, True, rule="surgery_pcgrad")
    # a base with state; the products g·u of sharded tensors need their own reduction
    SCENARIOS[f"{_engine}-adamw-gen"] = Scenario(_engine, True, base="adamw")


class Scale(nn.Module):
    """``x · s`` with a learnable 1-element ``s`` (under FSDP2 one rank holds an empty shard)."""

    def __init__(self) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.s


def make_model(root_param: bool = False) -> nn.Module:
    torch.manual_seed(1234)
    layers: list[nn.Module] = [nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3)]
    if root_param:
        layers.append(Scale())
    return nn.Sequential(*layers).double()


def make_data(rank: int, world: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(99)
    xr = torch.randn(16, 6, generator=g, dtype=torch.float64)
    yr = torch.randint(0, 3, (16,), generator=g)
    xf = torch.randn(8, 6, generator=g, dtype=torch.float64)
    yf = torch.randint(0, 3, (8,), generator=g)
    return xr[rank::world], yr[rank::world], xf[rank::world], yf[rank::world]


def wrap(model: nn.Module, engine: str, explicit_root: bool = False) -> nn.Module:
    if engine in ("ddp", "ddp-bucket-view"):
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(
            model, gradient_as_bucket_view=engine == "ddp-bucket-view"
        )
    if engine == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        fully_shard(model, reshard_after_forward=True if explicit_root else None)
        return model
    return model


def full_params(model: nn.Module, reshard: bool = False) -> Tensor:
    """All parameter values, flattened in order (FSDP2 shards gathered). With ``reshard``,
    FSDP2 modules first drop gathered copies left by a ``no_grad`` forward (a GeN probe),
    which would otherwise be what ``model.parameters()`` returns for the root module."""
    if reshard:
        fdist.reshard_fsdp(model)
    out = []
    for p in model.parameters():
        t = p.detach()
        if hasattr(t, "full_tensor"):
            t = t.full_tensor()
        out.append(t.reshape(-1).clone())
    return torch.cat(out)


class CountAllReduce:
    """Counts ``torch.distributed.all_reduce`` calls (and their sizes) while active."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self._orig: Callable[..., Any] | None = None

    def __enter__(self) -> CountAllReduce:  # noqa: PYI034
        self._orig = dist.all_reduce
        orig = self._orig

        def counting(tensor: Tensor, *args: Any, **kwargs: Any) -> Any:
            self.sizes.append(int(tensor.numel()))
            return orig(tensor, *args, **kwargs)

        dist.all_reduce = counting  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        dist.all_reduce = self._orig  # type: ignore[assignment]


def run_scenario(name: str, rank: int = 0, world: int = 1) -> dict[str, Any]:
    """Run ``STEPS`` optimizer steps of scenario ``name``; with ``world == 1`` the model is not
    wrapped and the poison is applied in-process (the single-process reference)."""
    sc = SCENARIOS[name]
    engine, autolr, poison = ("single" if world == 1 else sc.engine), sc.autolr, sc.poison
    poisoned_rank = world - 1
    model = wrap(make_model(sc.root_param), engine, sc.explicit_root)
    xr, yr, xf, yf = make_data(rank, world)
    opt = NGDiffOptimizer(
        model.parameters(), lr=0.05 if sc.base == "adamw" else 1.0, rule=sc.rule, base=sc.base,
        autolr=autolr, autolr_every=AUTOLR_EVERY, backend="torch",
    )
    state = {"step": 0, "probing": False}

    def retain() -> Tensor:
        if sc.reshard:
            fdist.reshard_fsdp(model)
        loss = F.cross_entropy(model(xr), yr)
        if (poison == "probe" and state["step"] == BAD_PROBE_STEP and rank == poisoned_rank
                and not torch.is_grad_enabled()):
            loss = loss + float("nan")  # only the GeN probes see it
        return loss

    def forget() -> Tensor:
        if sc.reshard:
            fdist.reshard_fsdp(model)
        loss = F.cross_entropy(model(xf), yf)
        if poison == "loss" and state["step"] == BAD_STEP and rank == poisoned_rank:
            loss = loss + (torch.full((), float("nan"), dtype=loss.dtype)).detach()
        return loss

    records: list[dict[str, Any]] = [{"params": full_params(model, sc.reshard)}]
    for step in range(STEPS):
        state["step"] = step
        with CountAllReduce() as counter:
            if poison == "shard" and step == BAD_STEP:
                loss_r = retain()
                loss_r.backward()
                opt.stash_retain_grad(loss_r)
                loss_f = forget()
                loss_f.backward()
                if rank == poisoned_rank:
                    p = next(p for p in model.parameters() if fdist.local_view(p.grad).numel())
                    fdist.local_view(p.grad).view(-1)[0] = float("nan")
                stats = opt.step_from_grads(loss_r, loss_f, closure_retain=retain)
            else:
                stats = opt.step(retain, forget)
        rec = dict(stats.as_dict())
        rec.update(
            all_reduce_sizes=counter.sizes,
            params=full_params(model, sc.reshard),
            lr_scale=float(opt.lr_scale),
            num_steps=int(opt.num_steps),
            gen_step=autolr and step % AUTOLR_EVERY == 0,
        )
        records.append(rec)
    return {"engine": engine, "autolr": autolr, "poison": poison, "records": records}


def check_layouts(rank: int, world: int) -> dict[str, Any]:
    """How :func:`fastngd.distributed.is_sharded` classifies DTensor layouts (needs a group)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (world,))
    base = torch.arange(8.0).reshape(4, 2)
    out: dict[str, Any] = {
        "plain": fdist.is_sharded(base),
        "shard": fdist.is_sharded(distribute_tensor(base, mesh, [Shard(0)])),
        "replicate": fdist.is_sharded(distribute_tensor(base, mesh, [Replicate()])),
        "world_size": fdist.world_size(),
    }
    sharded = distribute_tensor(base, mesh, [Shard(0)])
    out["local_shares_storage"] = (
        fdist.local_view(sharded).data_ptr() == sharded.to_local().data_ptr()
    )
    out["reshard_count"] = fdist.reshard_fsdp(wrap(make_model(), "fsdp2"))
    for name, placements, m in (
        ("partial", [Partial()], mesh),
        ("mesh2d", [Shard(0), Shard(1)], init_device_mesh("cpu", (1, world))),
    ):
        t = (
            DTensor.from_local(base, m, placements)
            if name == "partial" else distribute_tensor(base, m, placements)
        )
        try:
            fdist.is_sharded(t)
            out[name] = "accepted"
        except NotImplementedError as exc:
            out[name] = f"NotImplementedError: {exc}"
    return out


def main(argv: list[str]) -> int:
    out_dir, names = argv[0], argv[1:]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    results: dict[str, Any] = {}
    try:
        for name in names:
            try:
                if name == "layouts":
                    results[name] = check_layouts(rank, world)
                else:
                    results[name] = run_scenario(name, rank, world)
            except Exception:  # noqa: BLE001 - recorded: one broken engine hides no other
                results[name] = traceback.format_exc()
            dist.barrier()
    finally:
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

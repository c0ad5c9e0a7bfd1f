"""``fastngd.unlearn.unlearn`` on a DDP- and an FSDP2-wrapped classifier, one rank of a
``torchrun`` job (``python -m torch.distributed.run --nproc_per_node 2 unlearn_worker.py OUT``).

Every rank runs the loop on the same data (the loop pairs the same forget and retain batches
on every rank: its data order depends only on the seed); DDP and FSDP2 average identical
gradients and the optimizer averages identical losses, so each rank's history must equal the
single-process one. Each rank writes ``OUT/unlearn{rank}.pt``: ``{engine: history or error}``.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from fastngd.unlearn import unlearn

ENGINES = ("ddp", "fsdp2", "fsdp2-root-explicit", "fsdp2-root")
"""``fsdp2-root*``: the root module owns a parameter (see :class:`Scale`); ``-explicit``
shards the root with ``reshard_after_forward=True``."""
SETTINGS: dict[str, Any] = {
    "method": "ngdiff", "autolr": True, "autolr_every": 2, "epochs": 2, "batch_size": 4, "lr": 0.3, "seed": 5,
    "backend": "torch",
}
KEYS = ("loss_retain", "loss_forget", "norm_retain", "norm_forget", "cosine", "lr", "lr_scale")


class Scale(nn.Module):
    """``x · s`` with a learnable 1-element ``s``: a parameter of the FSDP2 root module."""

    def __init__(self) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.s


def make_model(root_param: bool = False) -> nn.Module:
    torch.manual_seed(7)
    layers: list[nn.Module] = [nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)]
    if root_param:
        layers.append(Scale())
    return nn.Sequential(*layers).double()


def make_data() -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(24, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (24,), generator=g)
    pairs = [(x[i], y[i]) for i in range(24)]
    return pairs[:8], pairs[8:]


def wrap(model: nn.Module, engine: str) -> nn.Module:
    if engine == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)
    if engine.startswith("fsdp2"):
        from torch.distributed.fsdp import fully_shard

        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        return fully_shard(model, reshard_after_forward=True if "explicit" in engine else None)
    return model


def run(engine: str, root_param: bool = False) -> list[dict[str, Any]]:
    """The loop's history (selected fields) for ``engine`` (``"single"``: no wrapping; with
    ``root_param`` the single-process model has the parameter of the ``fsdp2-root*`` ones)."""
    forget, retain = make_data()
    model = wrap(make_model(root_param or "root" in engine), engine)
    result = unlearn(model, forget, retain, **SETTINGS)
    return [{k: rec[k] for k in KEYS} for rec in result.history]


def main(out_dir: str) -> int:
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    rank = dist.get_rank()
    results: dict[str, Any] = {}
    try:
        for engine in ENGINES:
            try:
                results[engine] = run(engine)
            except Exception:  # noqa: BLE001 - recorded for the test to report
                results[engine] = traceback.format_exc()
            dist.barrier()
    finally:
        torch.save(results, os.path.join(out_dir, f"unlearn{rank}.pt"))
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""Parallel compilation of the Triton kernels before the correctness part needs them.

The correctness part meets about a hundred specialisations of the kernels (base × combine
mode × storage × pass × dtype of the fused kernel, and the Gram, quantisation, perturbation
and reduction kernels). Compiled one after another on first use, they would take a good share
of the part's time. Instead, a few processes run the kernel checks of
:mod:`bench._gpu_kernels`, each on its own share of the (dtype, base, mode, storage)
combinations: every kernel they launch is compiled into Triton's on-disk cache, which the
part then reads (same kernels, same specialisations: contiguous tensors from the caching
allocator, aligned alike). Their results are discarded; a failing or slow warm-up only costs
the time it saves, since the part compiles whatever is missing itself.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch

__all__ = ["shard_combos", "start_warmers", "wait_warmers", "warm_shard"]

_ROOT = Path(__file__).resolve().parents[1]


def shard_combos(shard: int, shards: int, smoke: bool) -> list[tuple[torch.dtype, tuple]]:
    """The ``(dtype, (kind, mode, storage))`` pairs of warm-up process ``shard`` of
    ``shards`` (dealt out in turn, so every share mixes bases and dtypes)."""
    from bench._gpu_kernels import kernel_combos

    pairs = [(d, c) for c in kernel_combos(smoke) for d in (torch.float32, torch.bfloat16)]
    return pairs[shard::shards]


def warm_shard(device: str, shard: int, shards: int, smoke: bool = False) -> int:
    """Run the kernel checks of this shard's combinations on ``device`` (results dropped);
    returns how many ran."""
    from bench._gpu_correctness import CorrectnessSizes
    from bench._gpu_kernels import KernelChecks

    dev = torch.device(device)
    sizes = CorrectnessSizes(smoke)
    mine = shard_combos(shard, shards, smoke)
    for dtype in (torch.float32, torch.bfloat16):
        combos = [c for d, c in mine if d == dtype]
        if combos:
            KernelChecks(dev, dtype, sizes).run(combos)
    return len(mine)


def start_warmers(device: torch.device, shards: int, smoke: bool = False,
                  only: Optional[Sequence[int]] = None) -> list[Any]:
    """Start ``shards`` warm-up processes (or only those of ``only``) on ``device``; their
    output is discarded."""
    code = ("import sys; sys.path.insert(0, {root!r}); import bench.gpu_check\n"
            "from bench._gpu_warmup import warm_shard\n"
            "warm_shard({device!r}, {shard}, {shards}, {smoke})")
    procs = []
    for k in (range(shards) if only is None else only):
        src = code.format(root=str(_ROOT), device=str(device), shard=k, shards=shards,
                          smoke=smoke)
        procs.append(subprocess.Popen([sys.executable, "-c", src], env=dict(os.environ),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, start_new_session=True))
    return procs


def wait_warmers(procs: Sequence[Any], timeout_s: float) -> dict[str, Any]:
    """Wait for the warm-up processes at most ``timeout_s`` seconds in all; those still
    running then are killed. Returns a record item (never a failure: the part compiles what
    is missing itself)."""
    t0 = time.monotonic()
    codes: list[Optional[int]] = []
    errors: list[str] = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=max(0.0, timeout_s - (time.monotonic() - t0)))
            codes.append(p.returncode)
            if p.returncode:
                errors.append(err.decode("utf-8", "replace")[-800:])
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            codes.append(None)
    seconds = time.monotonic() - t0
    done = sum(1 for c in codes if c == 0)
    return {"ok": True, "processes": len(procs), "finished": done, "returncodes": codes,
            "errors": errors, "waited_s": round(seconds, 2),
            "summary": f"{done}/{len(procs)} warm-up processes finished in {seconds:.1f} s"}

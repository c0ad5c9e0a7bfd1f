"""Part 2 of ``bench/gpu_check.py``: the optimizer step against the physical limit.

Each workload (GPT-2-small shapes, a 1.5-billion-element list of 300 tensors, 10,000 tiny
tensors; float32 and bfloat16) is measured by :func:`bench.optimizer_step.bench_workload`,
side by side in one run: median ms of the step and of the GeN step, GB/s of the traffic
floor, the ratio to a measured device-to-device ``copy_`` moving the same bytes, the ratio to
the naive step, peak extra memory over one gradient and launches per step. Added here: the
ratio to the torch backend and the fraction of the copy bandwidth reached.

The workload tensors are drawn on the device (``bench_workload(on_device=True)``: drawn on
the host, the 1.5B list would take minutes and 18 GB of host memory), and a workload is scaled down,
and marked so, when the device's free memory cannot hold what its measurement needs
(:func:`memory_needed`).
"""
from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch

from bench import optimizer_step as ostep
from bench._common import gpt2_shapes, numel, synthetic_shapes
from bench._gpu_harness import lost_context_check

__all__ = ["SpeedWorkload", "fit_to_memory", "make_providers", "memory_needed", "run_speed",
           "speed_workloads"]

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass
class SpeedWorkload:
    """One workload: shapes, dtype, which providers run, repetitions."""

    name: str
    shapes: list[tuple[int, ...]]
    dtype: str
    providers: tuple[str, ...]
    reps: int

    @property
    def key(self) -> str:
        return f"{self.name}/{self.dtype}"


_ALL = ("naive", "torch-exact", "torch-compact", "triton-exact", "triton-compact")
#: NGDiff + AdamW fused (both backends) against the composite with torch's own AdamW.
_ADAMW = ("torch-exact+adamw", "triton-exact+adamw", "composite-foreach+adamw",
          "composite-fused+adamw")
#: the torch backend's int8 path costs seconds per step on 1.5B elements: left out there.
_BIG = ("naive", "torch-exact", "triton-exact", "triton-compact")


def speed_workloads(smoke: bool) -> list[SpeedWorkload]:
    """The workloads of the part, in the order they run (most telling first)."""
    if smoke:  # stand-ins: every provider in one dtype, many tensors in the other
        return [SpeedWorkload("gpt2-small", synthetic_shapes(3, 3000), "fp32",
                              _ALL + _ADAMW[:1] + _ADAMW[2:3], 1),
                SpeedWorkload("tiny-10k", synthetic_shapes(4, 1000), "bf16", _BIG, 1)]
    out = []
    for d in ("fp32", "bf16"):  # every shape in fp32 first: a cut-off run still has them
        out += [SpeedWorkload("gpt2-small", gpt2_shapes("small"), d, _ALL + _ADAMW, 5),
                SpeedWorkload("list-1.5B", synthetic_shapes(300, 1_500_000_000), d, _BIG, 5),
                SpeedWorkload("tiny-10k", synthetic_shapes(10_000, 1 << 24), d, _BIG, 3)]
    return out


def memory_needed(numel_: int, elem: int) -> int:
    """Device bytes the measurement of a workload needs at its peak: parameters, g_R and g_F
    (3 copies), the naive provider's memory window (fresh g_R and g_F, its clone of g_R and
    its direction: 4 more copies) and a margin of one copy for the allocator."""
    return 8 * numel_ * elem


def fit_to_memory(wl: SpeedWorkload, free_bytes: Optional[int],
                  ) -> tuple[SpeedWorkload, Optional[str]]:
    """``wl`` itself, or the same number of tensors scaled down to fit ``free_bytes``."""
    elem = torch.empty((), dtype=_DTYPES[wl.dtype]).element_size()
    n = numel(wl.shapes)
    if free_bytes is None or memory_needed(n, elem) <= free_bytes:
        return wl, None
    fit = max(len(wl.shapes), int(free_bytes / (8 * elem)))
    note = (f"scaled from {n:,} to {fit:,} elements: {memory_needed(n, elem) / 2**30:.1f} GiB "
            f"needed, {free_bytes / 2**30:.1f} GiB free")
    return SpeedWorkload(wl.name, synthetic_shapes(len(wl.shapes), fit), wl.dtype,
                         wl.providers, wl.reps), note


def make_providers(keys: Sequence[str], device: torch.device) -> list[ostep.Provider]:
    """The providers of :func:`bench.optimizer_step.make_providers` whose keys are ``keys``
    (``naive``, ``torch-exact``, ``triton-compact+adamw``, ``composite-fused+adamw``, ...),
    in that order; Triton runs in its interpreter on the CPU (smoke mode)."""
    bases = sorted({k.split("+")[1] if "+" in k else "sgd" for k in keys})
    skipped: list[str] = []
    made = {p.key: p for p in ostep.make_providers(
        ["naive", "torch", "triton", "composite"], ["exact", "compact"], bases, device,
        skipped, interpreter=True)}
    missing = [k for k in keys if k not in made]
    if missing:
        raise RuntimeError(f"providers {missing} unavailable: {'; '.join(skipped) or 'unknown'}")
    return [made[k] for k in keys]


def _derived(result: dict[str, Any]) -> dict[str, Any]:
    """Ratios to the torch backend of the same base (same mode, else exact) and the fraction
    of the copy bandwidth, for every provider and pass it ran (a composite has no GeN)."""
    provs = result["providers"]
    for rec in provs.values():
        tail = "" if rec["base"] == "sgd" else f"+{rec['base']}"
        ref = provs.get(f"torch-{rec['mode']}{tail}") or provs.get(f"torch-exact{tail}")
        for pre in ("", "gen_"):
            ran = rec[pre + "median_ms"] is not None
            rec[pre + "ratio_vs_torch"] = (ref[pre + "median_ms"] / rec[pre + "median_ms"]
                                           if ref and ran and ref[pre + "median_ms"] else None)
            rec[pre + "copy_fraction"] = 1.0 / rec[pre + "ratio_vs_floor"] if ran else None
    return result


def _free_bytes(device: torch.device) -> Optional[int]:
    if device.type != "cuda":
        return None
    gc.collect()
    torch.cuda.empty_cache()
    return int(torch.cuda.mem_get_info(device)[0])


def workload_item(wl: SpeedWorkload, device: torch.device) -> dict[str, Any]:
    """Measure one workload (see the module docstring)."""
    wl, note = fit_to_memory(wl, _free_bytes(device))
    owl = ostep.Workload(wl.name, wl.shapes, _DTYPES[wl.dtype])
    providers = make_providers(wl.providers, device)
    try:
        result = ostep.bench_workload(owl, providers, device, wl.reps, True, True,
                                      on_device=True)
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    result["scaled"] = note
    result = _derived(result)
    tri = result["providers"].get("triton-exact")
    summary = ""
    if tri:
        summary = (f"triton step {tri['median_ms']:.2f} ms = {tri['copy_fraction']:.0%} of copy "
                   f"bandwidth, {tri['ratio_vs_torch']:.1f}x torch, GeN {tri['gen_median_ms']:.2f}"
                   f" ms, mem {tri['extra_memory_vs_grad']:.3f}x grad")
    return {"ok": True, "result": result, "summary": summary}


def run_speed(device: torch.device, smoke: bool, rec: Any) -> None:
    """Run every workload of part 2 into the recorder ``rec``."""
    on_error = lost_context_check(device)
    for wl in speed_workloads(smoke):
        rec.run(wl.key, lambda w=wl: workload_item(w, device), on_error)

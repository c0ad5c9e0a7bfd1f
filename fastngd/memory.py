"""Measured memory: the peak of what a call allocates, on the CPU or a CUDA device.

The CPU has no allocator statistics, so on the CPU the profiler's allocation events are
replayed in time order (``torch.profiler`` with ``profile_memory=True``); on CUDA the caching
allocator's peak counter is used.
"""
from __future__ import annotations

import gc
from typing import Any, Callable

import torch

__all__ = ["peak_extra_bytes"]


def _cpu_allocations(prof: Any) -> list[tuple[int, int]]:
    events: list[tuple[int, int]] = []

    def walk(node: Any) -> None:
        if "Allocation" in str(node.tag):
            events.append((node.start_time_ns, node.extra_fields.alloc_size))
        for child in node.children:
            walk(child)

    for root in prof.profiler.kineto_results.experimental_event_tree():
        walk(root)
    events.sort()
    return events


def peak_extra_bytes(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Highest number of bytes allocated while ``fn`` ran and alive at one moment, counting
    frees of memory allocated before the call as negative.

    CPU: the running sum of the profiler's allocation events. CUDA: ``max_memory_allocated``
    minus the memory allocated at the start.
    """
    device = torch.device(device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - start)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    running = peak = 0
    for _, size in _cpu_allocations(prof):
        running += size
        peak = max(peak, running)
    return peak



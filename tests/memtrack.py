"""A CPU allocation tracker built on the profiler's allocation events.

``peak_extra_bytes(fn)`` runs ``fn`` and returns the highest number of bytes that were
allocated *during* the call and still alive at some moment (the peak of the running sum of
allocations and frees made while ``fn`` ran).
"""
from __future__ import annotations

from typing import Callable

from torch.profiler import ProfilerActivity, profile


def _allocations(prof) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []

    def walk(node) -> None:
        if "Allocation" in str(node.tag):
            out.append((node.start_time_ns, node.extra_fields.alloc_size))
        for child in node.children:
            walk(child)

    for root in prof.profiler.kineto_results.experimental_event_tree():
        walk(root)
    out.sort()
    return out


def peak_extra_bytes(fn: Callable[[], object]) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    running = peak = 0
    for _, size in _allocations(prof):
        running += size
        peak = max(peak, running)
    return peak

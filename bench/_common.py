"""Shared code of the microbenchmarks: workloads, timing, memory and launch accounting.

Nothing here downloads anything: the GPT-2 parameter shapes are written out from the
architecture (vocabulary 50257, context 1024, tied output embedding).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fastngd.memory import peak_extra_bytes

Shape = tuple[int, ...]

__all__ = [
    "Shape",
    "Timing",
    "copy_bandwidth",
    "count_ops",
    "format_table",
    "gpt2_shapes",
    "machine_description",
    "numel",
    "peak_extra_bytes",
    "sync",
    "synthetic_shapes",
    "time_fn",
    "write_json",
]

#: (layers, width) of the GPT-2 sizes benchmarked.
GPT2_SIZES: dict[str, tuple[int, int]] = {
    "small": (12, 768), "medium": (24, 1024),
    "tiny": (2, 64),  # a stand-in with the same layout, for smoke tests
}


def gpt2_shapes(size: str = "small", vocab: int = 50257, context: int = 1024) -> list[Shape]:
    """Parameter shapes of GPT-2 (``small``: 148 tensors, 124,439,808 elements;
    ``medium``: 292 tensors, 354,823,168 elements; ``tiny``: 2 layers of width 64, for smoke
    tests), in the order of ``named_parameters``."""
    layers, d = GPT2_SIZES[size]
    shapes: list[Shape] = [(vocab, d), (context, d)]
    for _ in range(layers):
        shapes += [
            (d,), (d,),                 # ln_1 weight, bias
            (d, 3 * d), (3 * d,),       # attention qkv projection (Conv1D layout)
            (d, d), (d,),               # attention output projection
            (d,), (d,),                 # ln_2 weight, bias
            (d, 4 * d), (4 * d,),       # MLP up projection
            (4 * d, d), (d,),           # MLP down projection
        ]
    shapes += [(d,), (d,)]              # final layer norm
    return shapes


def synthetic_shapes(count: int, total: int) -> list[Shape]:
    """``count`` flat tensors whose sizes add up to ``total`` (sizes differ by at most 1)."""
    base, extra = divmod(total, count)
    return [(base + (1 if i < extra else 0),) for i in range(count)]


def numel(shapes: Sequence[Shape]) -> int:
    """Total number of elements of a shape list."""
    n = 0
    for s in shapes:
        k = 1
        for d in s:
            k *= d
        n += k
    return n


def sync(device: torch.device) -> None:
    """Wait for the device to finish queued work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timing:
    """Median and interquartile range of repeated wall-clock measurements, in ms."""

    def __init__(self, samples_ms: Sequence[float]) -> None:
        self.samples_ms = list(samples_ms)
        q = statistics.quantiles(self.samples_ms, n=4) if len(self.samples_ms) > 1 else None
        self.median_ms = statistics.median(self.samples_ms)
        self.iqr_ms = (q[2] - q[0]) if q else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"median_ms": self.median_ms, "iqr_ms": self.iqr_ms,
                "samples_ms": self.samples_ms}


def time_fn(fn: Callable[[], object], device: torch.device, reps: int,
            warmup: int = 1) -> Timing:
    """Run ``fn`` ``warmup`` times, then time ``reps`` calls one by one."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append((time.perf_counter() - t0) * 1e3)
    return Timing(out)


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = str(func)
        # metadata-only ops (views, shape queries) launch nothing
        if not any(k in name for k in ("view", "detach", "alias", "as_strided", "slice",
                                       "select", "unsqueeze", "expand", "t.default",
                                       "_reshape_alias", "split", "unbind", "squeeze")):
            self.count += 1
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable[[], object]) -> int:
    """Number of ATen compute operations ``fn`` dispatches (views excluded): what would be
    at least one kernel launch each on a GPU."""
    with _OpCounter() as counter:
        fn()
    return counter.count


def copy_bandwidth(device: torch.device, nbytes: int, reps: int) -> tuple[float, Timing]:
    """Measured copy bandwidth (bytes read + bytes written per second) with one
    ``dst.copy_(src)`` of ``nbytes`` on ``device``; returns ``(bytes_per_s, timing)``."""
    n = max(1, nbytes // 4)
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    timing = time_fn(lambda: dst.copy_(src), device, reps, warmup=2)
    return 2 * n * 4 / (timing.median_ms / 1e3), timing


def machine_description(device: torch.device) -> dict[str, Any]:
    """Host, CPU, thread and accelerator facts recorded next to the numbers (with the load
    average at the time: the machine may be shared)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_bytes": mem,
        "device": str(device),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    try:
        import triton

        info["triton"] = triton.__version__
    except Exception:  # noqa: BLE001 (any failure means: no usable triton)
        info["triton"] = None
    return info


def write_json(path: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON (creating the parent directory)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]],
                 ) -> str:
    """Plain-text table; ``columns`` are ``(key, header, format)`` (format ``""`` = str)."""
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        line = []
        for key, _, fmt in columns:
            v: Optional[Any] = row.get(key)
            if v is None:
                line.append("-")
            elif fmt:
                line.append(format(v, fmt))
            else:
                line.append(str(v))
        cells.append(line)
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    out = []
    for k, line in enumerate(cells):
        out.append("  ".join(c.rjust(w) if k else c.ljust(w) for c, w in zip(line, widths)))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)

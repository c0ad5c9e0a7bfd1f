"""Microbenchmark of one NGDiff optimizer step: naive PyTorch vs the torch and Triton backends.

For every workload (a list of parameter shapes and a dtype) and every provider, measured side
by side in one run with the repetitions interleaved (rep 1 of every provider, then rep 2, ...)
so that a change of machine load hits all of them alike:

* ``step``: the fixed-learning-rate step after the two backward passes: keep g_R (the retain
  gradient), Gram reduction ``(rr, ff, rf)``, NGDiff weights, update ``θ ← θ − η·d``;
* ``gen``: a GeN step: the same up to the weights, then direction and backup, two probe
  perturbations and the final perturbation. The two probe forward passes are **excluded**
  (stubbed out: nothing runs between the perturbations), so this times the optimizer's own
  memory traffic only;
* bytes moved: the traffic floor of the operation (per element: exact step 6 accesses, GeN
  step 16; compact mode counts its 8-bit codes and the quantisation), the achieved GB/s
  (floor bytes / time), and the streaming floor: the time a measured ``copy_`` on the same
  machine takes to move that many bytes (bytes read + written, on buffers of one gradient,
  capped at 512 MB so they do not fit in the caches);
* extra memory: the peak of memory allocated beyond the parameters and one set of gradients,
  from the moment g_R sits in ``.grad`` (after the retain backward) to the end of the step,
  with the forget backward simulated by a fresh copy of g_F (CPU: the profiler's allocation
  events; CUDA: ``max_memory_allocated``). Exact mode should hold one gradient (g_R),
  compact mode its codes;
* launches per step: Triton kernel launches from ``fastngd.kernels.launch_count``; for the
  torch-op providers, the number of ATen compute operations dispatched (each one at least one
  kernel launch on a GPU).

Providers: ``naive`` (the step as one would write it by hand in PyTorch), ``torch`` and
``triton`` (through the same backend calls as :class:`fastngd.NGDiffOptimizer`), each backend
in ``exact`` and ``compact`` (``retain_storage="int8"``) mode. ``triton`` needs CUDA and is
skipped, with the reason printed, without it.

Usage::

    python bench/optimizer_step.py                 # full run (GPT-2 small/medium, synthetic)
    python bench/optimizer_step.py --smoke --json out.json   # tiny sizes, a few seconds
    python bench/optimizer_step.py --workloads gpt2-small --dtypes fp32 --reps 5
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import (
    Timing,
    count_ops,
    format_table,
    gpt2_shapes,
    machine_description,
    numel,
    peak_extra_bytes,
    sync,
    synthetic_shapes,
    write_json,
)
from fastngd.compact import BLOCK_SIZE
from fastngd.rules import get_rule

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
LR = 1e-4
#: bytes per element of the compact codes (one code byte + a float32 scale per block).
CODE_BYTES = 1.0 + 4.0 / BLOCK_SIZE
#: bytes of each copy buffer used to measure the streaming floor, at most.
COPY_CAP_BYTES = 512 << 20


# ---------------------------------------------------------------------------- workloads
@dataclass
class Workload:
    """A named list of parameter shapes in one dtype."""

    name: str
    shapes: list[tuple[int, ...]]
    dtype: torch.dtype

    @property
    def key(self) -> str:
        return f"{self.name}/{str(self.dtype).replace('torch.', '')}"


def build_workloads(names: Sequence[str], dtypes: Sequence[str], synth_total: int,
                    synth_counts: Sequence[int]) -> list[Workload]:
    out: list[Workload] = []
    for dname in dtypes:
        dtype = DTYPES[dname]
        for name in names:
            if name == "synthetic":
                for c in synth_counts:
                    out.append(Workload(f"synthetic-{c}", synthetic_shapes(c, synth_total), dtype))
            elif name.startswith("gpt2-"):
                size = name.split("-", 1)[1]
                if size == "tiny":  # smoke-test stand-in with the GPT-2 layout
                    shapes = gpt2_shapes("tiny", vocab=500, context=64)
                else:
                    shapes = gpt2_shapes(size)
                out.append(Workload(name, shapes, dtype))
            else:
                raise SystemExit(f"unknown workload {name!r}")
    return out


# ---------------------------------------------------------------------------- state
class State:
    """Parameters, retain and forget gradients of one workload (random, fixed seed)."""

    def __init__(self, wl: Workload, device: torch.device) -> None:
        g = torch.Generator(device="cpu").manual_seed(0)

        def rand(shape: tuple[int, ...], scale: float) -> Tensor:
            return (torch.randn(shape, generator=g) * scale).to(device=device, dtype=wl.dtype)

        self.params = [rand(s, 0.02) for s in wl.shapes]
        self.retain = [rand(s, 1e-3) for s in wl.shapes]
        self.forget = [rand(s, 1e-3) for s in wl.shapes]
        self.n = numel(wl.shapes)
        self.elem = torch.empty((), dtype=wl.dtype).element_size()
        self.grad_bytes = self.n * self.elem
        self.device = device
        self.lr = torch.full((len(self.params),), LR, dtype=torch.float32, device=device)


_RULE = get_rule("ngdiff")


def _weights(gram: Tensor) -> Tensor:
    losses = torch.zeros(2, dtype=gram.dtype, device=gram.device)
    return _RULE.weights(gram, losses, torch.zeros_like(losses))


# ---------------------------------------------------------------------------- providers
class Provider:
    """One way of running the step; ``step``/``gen`` may modify the state in place."""

    name = "abstract"
    mode = "exact"

    @property
    def key(self) -> str:
        return self.name if self.name == "naive" else f"{self.name}-{self.mode}"

    def stash(self, st: State, grads: list[Tensor]) -> Any:
        """What is kept of g_R (given as the tensors the retain backward produced)."""
        raise NotImplementedError

    def step(self, st: State, kept: Any) -> None:
        raise NotImplementedError

    def gen(self, st: State, kept: Any) -> None:
        raise NotImplementedError

    def launches(self, fn: Callable[[], None]) -> int:
        return count_ops(fn)


class Naive(Provider):
    """NGDiff as written by hand: clone g_R, per-tensor norms in a Python loop, temporaries
    for the normalised difference, per-tensor update (and, for GeN, a cloned backup and a
    temporary per perturbation)."""

    name = "naive"

    def stash(self, st: State, grads: list[Tensor]) -> Any:
        return [g.clone() for g in grads]

    @staticmethod
    def _direction(g_r: list[Tensor], g_f: list[Tensor]) -> list[Tensor]:
        nr2 = torch.zeros((), device=g_r[0].device)
        nf2 = torch.zeros((), device=g_r[0].device)
        for g in g_r:
            nr2 = nr2 + g.norm().float() ** 2
        for g in g_f:
            nf2 = nf2 + g.norm().float() ** 2
        nr, nf = nr2.sqrt(), nf2.sqrt()
        return [a / nr.to(a.dtype) - b / nf.to(b.dtype) for a, b in zip(g_r, g_f)]

    def step(self, st: State, kept: Any) -> None:
        d = self._direction(kept, st.forget)
        for p, di in zip(st.params, d):
            p.sub_(di, alpha=LR)

    def gen(self, st: State, kept: Any) -> None:
        d = self._direction(kept, st.forget)
        backup = [p.clone() for p in st.params]
        for s in (-LR, LR, -LR):  # probe −, probe + (forwards stubbed out), final
            for p, b, di in zip(st.params, backup, d):
                p.copy_(b + s * di)


class BackendProvider(Provider):
    """A :class:`fastngd.backends.Backend` driven the way the optimizer drives it."""

    def __init__(self, backend: Any, mode: str) -> None:
        self.backend = backend
        self.name = backend.name
        self.mode = mode

    def stash(self, st: State, grads: list[Tensor]) -> Any:
        return self.backend.store_retain(grads, "int8" if self.mode == "compact" else "exact")

    def step(self, st: State, kept: Any) -> None:
        gram = self.backend.gram(kept, st.forget)
        self.backend.update(st.params, kept, st.forget, st.lr, _weights(gram))

    def gen(self, st: State, kept: Any) -> None:
        gram = self.backend.gram(kept, st.forget)
        d, b = self.backend.direction_and_backup(st.params, kept, st.forget, _weights(gram))
        for factor in (-1.0, 1.0, -1.0):  # probe −, probe + (forwards stubbed out), final
            self.backend.perturb(st.params, b, d, st.lr * factor)


class TritonProvider(BackendProvider):
    def launches(self, fn: Callable[[], None]) -> int:
        from fastngd.kernels import launch_count

        before = launch_count()
        fn()
        sync(torch.device("cuda"))
        return launch_count() - before


def make_providers(names: Sequence[str], modes: Sequence[str], device: torch.device,
                   skipped: list[str]) -> list[Provider]:
    out: list[Provider] = []
    for name in names:
        if name == "naive":
            out.append(Naive())
            continue
        if name == "torch":
            from fastngd.backends import TorchBackend

            out += [BackendProvider(TorchBackend(), m) for m in modes]
            continue
        if name == "triton":
            if device.type != "cuda":
                msg = "triton: skipped (needs a CUDA device; this run is on the CPU)"
                print(msg)
                skipped.append(msg)
                continue
            try:
                from fastngd.backends.triton import TritonBackend

                be = TritonBackend()
            except Exception as err:  # noqa: BLE001 (triton missing or broken)
                msg = f"triton: skipped ({type(err).__name__}: {err})"
                print(msg)
                skipped.append(msg)
                continue
            out += [TritonProvider(be, m) for m in modes]
            continue
        raise SystemExit(f"unknown provider {name!r}")
    return out


# ---------------------------------------------------------------------------- traffic
def floor_bytes(st: State, mode: str, gen: bool) -> float:
    """Bytes the operation must move at least (see the module docstring)."""
    s, n = st.elem, st.n
    if mode == "compact":
        per = (15 * s + 3 * CODE_BYTES) if gen else (5 * s + 3 * CODE_BYTES)
    else:
        per = 16 * s if gen else 6 * s
    return per * n


# ---------------------------------------------------------------------------- measuring
def measure_memory(prov: Provider, st: State, gen: bool) -> int:
    """Peak extra bytes beyond params and one gradient set (see the module docstring).

    The tracked window starts with the retain backward, simulated by a fresh copy of g_R
    (the one gradient set every optimizer holds; subtracted from the peak), then the stash
    (what is not kept is freed, as ``p.grad = None`` does), the forget backward (a fresh copy
    of g_F) and the step. Everything is allocated inside the window so that the tracker sees
    every free as well. The backend's work runs on the calling thread here, where the
    tracker sees it (same work items, so the same temporaries per item).
    """

    def window() -> None:
        g = [r.clone() for r in st.retain]  # the retain backward
        kept = prov.stash(st, g)
        del g  # ``p.grad = None``: what was not kept is freed
        forget = [f.clone() for f in st.forget]  # the forget backward
        saved = st.forget
        st.forget = forget
        try:
            (prov.gen if gen else prov.step)(st, kept)
        finally:
            st.forget = saved
        del kept, forget

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        peak = peak_extra_bytes(window, st.device)
    finally:
        torch.set_num_threads(threads)
    gc.collect()
    return max(0, peak - st.grad_bytes)


def _run_once(prov: Provider, st: State, gen: bool) -> float:
    sync(st.device)
    t0 = time.perf_counter()
    kept = prov.stash(st, st.retain)
    (prov.gen if gen else prov.step)(st, kept)
    sync(st.device)
    dt = (time.perf_counter() - t0) * 1e3
    del kept
    return dt


def bench_workload(wl: Workload, providers: Sequence[Provider], device: torch.device,
                   reps: int, do_gen: bool, do_memory: bool) -> dict[str, Any]:
    st = State(wl, device)
    # streaming floor: a copy of (at most) one gradient's bytes
    cn = max(1, min(st.n, COPY_CAP_BYTES // st.elem))
    bufs = {"src": torch.randn(cn, device=device).to(wl.dtype)}
    bufs["dst"] = torch.empty_like(bufs["src"])
    copy_bytes = 2 * cn * st.elem
    kinds = ["step", "gen"] if do_gen else ["step"]
    samples: dict[tuple[str, str], list[float]] = {(p.key, k): [] for p in providers for k in kinds}
    copy_samples: list[float] = []

    def do_copy() -> float:
        sync(device)
        t0 = time.perf_counter()
        bufs["dst"].copy_(bufs["src"])
        sync(device)
        return (time.perf_counter() - t0) * 1e3

    do_copy()
    for p in providers:  # warm-up (caches, worker threads, lazy initialisation)
        for k in kinds:
            _run_once(p, st, k == "gen")
    for _ in range(reps):
        copy_samples.append(do_copy())
        for p in providers:
            for k in kinds:
                samples[(p.key, k)].append(_run_once(p, st, k == "gen"))
    bufs.clear()
    copy_t = Timing(copy_samples)
    bandwidth = copy_bytes / (copy_t.median_ms / 1e3)

    out: dict[str, Any] = {
        "workload": wl.name, "dtype": str(wl.dtype).replace("torch.", ""),
        "n_tensors": len(wl.shapes), "numel": st.n, "grad_bytes": st.grad_bytes,
        "copy": {"bytes": copy_bytes, **copy_t.as_dict(), "gbps": bandwidth / 1e9},
        "providers": {},
    }
    naive_ms = {k: Timing(samples[("naive", k)]).median_ms
                for k in kinds if ("naive", k) in samples}
    for p in providers:
        rec: dict[str, Any] = {"provider": p.name, "mode": p.mode}
        for k in kinds:
            t = Timing(samples[(p.key, k)])
            pre = "" if k == "step" else "gen_"
            fb = floor_bytes(st, p.mode, k == "gen")
            floor_ms = fb / bandwidth * 1e3
            rec[pre + "median_ms"] = t.median_ms
            rec[pre + "iqr_ms"] = t.iqr_ms
            rec[pre + "samples_ms"] = t.samples_ms
            rec[pre + "ratio_vs_naive"] = (naive_ms[k] / t.median_ms) if k in naive_ms else None
            rec[pre + "bytes_moved"] = fb
            rec[pre + "gbps"] = fb / (t.median_ms / 1e3) / 1e9
            rec[pre + "floor_ms"] = floor_ms
            rec[pre + "ratio_vs_floor"] = t.median_ms / floor_ms
        # launches per step (one counted run each; these modify the state like a rep)
        rec["launches_per_step"] = p.launches(lambda p=p: p.step(st, p.stash(st, st.retain)))
        if do_gen:
            rec["gen_launches_per_step"] = p.launches(
                lambda p=p: p.gen(st, p.stash(st, st.retain)))
        if do_memory:
            for k in kinds:
                pre = "" if k == "step" else "gen_"
                b = measure_memory(p, st, k == "gen")
                rec[pre + "extra_memory_bytes"] = b
                rec[pre + "extra_memory_vs_grad"] = b / st.grad_bytes
        else:
            for k in kinds:
                pre = "" if k == "step" else "gen_"
                rec[pre + "extra_memory_bytes"] = None
                rec[pre + "extra_memory_vs_grad"] = None
        out["providers"][p.key] = rec
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


# ---------------------------------------------------------------------------- main
COLUMNS = [
    ("workload", "workload", ""), ("dtype", "dtype", ""), ("n_tensors", "tensors", "d"),
    ("provider", "provider", ""), ("median_ms", "step ms", ".1f"), ("iqr_ms", "IQR", ".1f"),
    ("ratio_vs_naive", "vs naive", ".2f"), ("gbps", "GB/s", ".1f"),
    ("floor_ms", "floor ms", ".1f"), ("ratio_vs_floor", "/floor", ".2f"),
    ("gen_median_ms", "GeN ms", ".1f"), ("gen_iqr_ms", "IQR", ".1f"),
    ("gen_ratio_vs_naive", "vs naive", ".2f"), ("gen_ratio_vs_floor", "/floor", ".2f"),
    ("extra_memory_vs_grad", "mem/grad", ".3f"), ("gen_extra_memory_vs_grad", "GeN mem", ".3f"),
    ("launches_per_step", "launches", "d"), ("gen_launches_per_step", "GeN launches", "d"),
]


def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for wl in results.values():
        for key, rec in wl["providers"].items():
            rows.append({"workload": wl["workload"], "dtype": wl["dtype"],
                         "n_tensors": wl["n_tensors"], **rec, "provider": key})
    return rows


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds (CI)")
    ap.add_argument("--json", metavar="PATH", help="write the numbers and the machine here")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument("--workloads", default=None,
                    help="comma list of gpt2-small, gpt2-medium, gpt2-tiny, synthetic")
    ap.add_argument("--dtypes", default=None, help="comma list of fp32, bf16, fp16")
    ap.add_argument("--providers", default="naive,torch,triton")
    ap.add_argument("--modes", default="exact,compact", help="backend modes: exact, compact")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (default 5)")
    ap.add_argument("--synthetic-total", type=int, default=None,
                    help="total elements of the synthetic lists (default 2^24)")
    ap.add_argument("--synthetic-counts", default=None, help="default 10,100,1000,10000")
    ap.add_argument("--no-gen", action="store_true", help="skip the GeN step")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    return ap.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.smoke:
        names = (args.workloads or "gpt2-tiny,synthetic").split(",")
        dtypes = (args.dtypes or "fp32,bf16").split(",")
        reps = args.reps or 2
        total = args.synthetic_total or (1 << 14)
        counts = [int(c) for c in (args.synthetic_counts or "100").split(",")]
    else:
        names = (args.workloads or "gpt2-small,gpt2-medium,synthetic").split(",")
        dtypes = (args.dtypes or "fp32,bf16").split(",")
        reps = args.reps or 5
        total = args.synthetic_total or (1 << 24)
        counts = [int(c) for c in (args.synthetic_counts or "10,100,1000,10000").split(",")]
    skipped: list[str] = []
    providers = make_providers(args.providers.split(","), args.modes.split(","), device, skipped)
    if not any(p.name == "naive" for p in providers):
        print("note: without the naive provider, ratio_vs_naive is null")
    if args.smoke and not (args.workloads or args.dtypes):
        # the GPT-2 layout in both dtypes, and a list of many tensors
        workloads = (build_workloads(["gpt2-tiny"], dtypes, total, counts)
                     + build_workloads(["synthetic"], ["fp32"], total, counts))
    else:
        workloads = build_workloads(names, dtypes, total, counts)
    machine = machine_description(device)
    print(f"device {device}, {machine['cpu']}, {machine['torch_threads']} threads, "
          f"torch {machine['torch']}; reps {reps}")
    results: dict[str, Any] = {}
    t_start = time.time()
    for wl in workloads:
        if wl.name == "gpt2-medium" and wl.dtype != torch.float32 and not args.smoke:
            continue  # medium in fp32 only (its naive step alone needs ~7 GB)
        t0 = time.time()
        results[wl.key] = bench_workload(wl, providers, device, reps, not args.no_gen,
                                         not args.no_memory)
        print(f"  {wl.key}: {len(wl.shapes)} tensors, {numel(wl.shapes):,} elements, "
              f"{time.time() - t0:.1f} s", flush=True)
    print()
    print(format_table(table_rows(results), COLUMNS))
    for s in skipped:
        print(s)
    payload = {
        "benchmark": "optimizer_step",
        "machine": machine,
        "config": {"reps": reps, "lr": LR, "smoke": args.smoke, "workloads": names,
                   "dtypes": dtypes, "providers": [p.key for p in providers],
                   "gen_probes": "excluded (stubbed: no forward between perturbations)",
                   "memory": "peak allocated beyond params + one gradient set, from g_R in "
                             ".grad to the end of the step",
                   "launches": "triton: kernel launch counter; others: ATen compute ops"},
        "skipped": skipped,
        "results": results,
        "wall_s": time.time() - t_start,
    }
    if args.json:
        write_json(args.json, payload)
        print(f"wrote {args.json}")
    return payload


if __name__ == "__main__":
    main()

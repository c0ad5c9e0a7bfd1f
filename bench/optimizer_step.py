"""Microbenchmark of one optimizer step: naive PyTorch, the torch and Triton backends, and the
composite a user writes with torch's own optimizers.

For every workload (a list of parameter shapes and a dtype) and every provider, measured side
by side in one run with the repetitions interleaved (rep 1 of every provider, then rep 2, ...)
so that a change of machine load hits all of them alike:

* ``step``: the fixed-learning-rate step after the two backward passes: keep g_R (the retain
  gradient), Gram reduction ``(rr, ff, rf)``, NGDiff weights, the base's update (``sgd``:
  ``θ ← θ − η·d``; ``adamw``: AdamW's moments and step with ``d`` as the gradient, fused);
* ``gen``: a GeN step: the same up to the weights, then ``advance_and_backup`` (the base's
  state advanced, ``u`` and a backup of θ kept), two probe perturbations and the final one.
  The two probe forward passes are **excluded** (stubbed out: nothing runs between the
  perturbations), so this times the optimizer's own memory traffic only;
* bytes moved: the traffic floor of the operation (per element, in units of the parameter
  size s, plus 4-byte state accesses: exact step 6 + 8 per state buffer (AdamW: 10 accesses
  in all), GeN step 16 + 8 per state buffer; compact mode counts its 8-bit codes and the
  quantisation), the achieved GB/s (floor bytes / time), and the streaming floor: the time a
  measured ``copy_`` on the same machine takes to move that many bytes (bytes read + written,
  on buffers of one gradient, capped at 512 MB so they do not fit in the caches);
* extra memory: the peak of memory allocated beyond the parameters, one set of gradients and
  the base's state (which exists before the step), from the moment g_R sits in ``.grad``
  (after the retain backward) to the end of the step, with the forget backward simulated by a
  fresh copy of g_F (CPU: the profiler's allocation events; CUDA: ``max_memory_allocated``).
  Exact mode should hold one gradient (g_R), compact mode its codes;
* launches per step: Triton kernel launches from ``fastngd.kernels.launch_count``; for the
  torch-op providers, the number of ATen compute operations dispatched (each one at least one
  kernel launch on a GPU).

Providers (``bench/_step_providers.py``): ``naive`` (NGDiff + SGD by hand), ``torch`` and
``triton`` (through the same backend calls as :class:`fastngd.NGDiffOptimizer`; on the CPU
``torch`` runs its native loop, :mod:`fastngd.backends.native`, when it builds), ``torch-ops``
(the torch backend with that loop turned off: every item through torch ops), each backend
in ``exact`` and ``compact`` (``retain_storage="int8"``) mode and for each base of
``--bases`` (keys ``torch-exact+adamw`` etc.), and for ``adamw`` the ``composite``: NGDiff's
direction formed with ``foreach`` ops into the forget gradient's buffer, then
``torch.optim.AdamW(foreach=True)`` (``composite-foreach+adamw``) or ``fused=True``
(``composite-fused+adamw``). ``triton`` needs CUDA and is skipped, with the reason printed,
without it. The machine's load average is recorded before and after each workload.

Usage::

    python bench/optimizer_step.py                 # full run (GPT-2 small/medium, synthetic)
    python bench/optimizer_step.py --smoke --json out.json   # tiny sizes, a few seconds
    python bench/optimizer_step.py --workloads gpt2-small --dtypes fp32 --bases adamw --reps 9
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import (
    Timing,
    format_table,
    gpt2_shapes,
    machine_description,
    numel,
    peak_extra_bytes,
    sync,
    synthetic_shapes,
    write_json,
)
from bench._step_providers import (
    LR,
    BackendProvider,
    Composite,
    Naive,
    Provider,
    State,
    TorchOpsProvider,
    TritonProvider,
)
from fastngd.backends import state_names
from fastngd.compact import BLOCK_SIZE

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
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


def make_providers(names: Sequence[str], modes: Sequence[str], bases: Sequence[str],
                   device: torch.device, skipped: list[str],
                   interpreter: bool = False) -> list[Provider]:
    """The providers of ``names`` (naive, torch, triton, composite) for every base;
    ``triton`` runs on CUDA, or on the CPU in Triton's interpreter when ``interpreter`` is
    set (and ``TRITON_INTERPRET=1`` was set before triton was imported)."""
    out: list[Provider] = []
    triton_be: Any = None
    if "triton" in names:
        triton_be = _triton_backend(device, skipped, interpreter)
    for base in bases:
        for name in names:
            if name == "naive" and base == "sgd":
                out.append(Naive())
            elif name == "torch":
                from fastngd.backends import TorchBackend

                out += [BackendProvider(TorchBackend(), m, base) for m in modes]
            elif name == "torch-ops":
                out += [TorchOpsProvider(m, base) for m in modes]
            elif name == "triton" and triton_be is not None:
                out += [TritonProvider(triton_be, m, base) for m in modes]
            elif name == "composite" and base == "adamw":
                out += [Composite(fused=False), Composite(fused=True)]
            elif name not in ("naive", "torch", "torch-ops", "triton", "composite"):
                raise SystemExit(f"unknown provider {name!r}")
    return out


def _triton_backend(device: torch.device, skipped: list[str], interpreter: bool) -> Any:
    if device.type != "cuda" and not interpreter:
        msg = "triton: skipped (needs a CUDA device; this run is on the CPU)"
    else:
        try:
            from fastngd.backends.triton import TritonBackend

            backend = TritonBackend()
            backend.check_device(device)
            return backend
        except Exception as err:  # noqa: BLE001 (triton missing, broken or unusable here)
            msg = f"triton: skipped ({type(err).__name__}: {err})"
    print(msg)
    skipped.append(msg)
    return None


# ---------------------------------------------------------------------------- traffic
def floor_bytes(st: State, mode: str, gen: bool, base: str = "sgd") -> float:
    """Bytes the operation must move at least (see the module docstring)."""
    s, n = st.elem, st.n
    if mode == "compact":
        per = (15 * s + 3 * CODE_BYTES) if gen else (5 * s + 3 * CODE_BYTES)
    else:
        per = 16 * s if gen else 6 * s
    state_bytes = 4 if st.elem < 8 else 8
    return (per + 2 * state_bytes * len(state_names(base))) * n


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


def _kinds(p: Provider, do_gen: bool) -> list[str]:
    return ["step", "gen"] if do_gen and p.has_gen else ["step"]


def _timed(providers: Sequence[Provider], st: State, device: torch.device, reps: int,
           do_gen: bool, copy_bytes_cap: int) -> tuple[dict[tuple[str, str], list[float]], Timing, int]:
    """Interleaved repetitions of every provider (and of the streaming copy)."""
    cn = max(1, min(st.n, copy_bytes_cap // st.elem))
    bufs = {"src": torch.randn(cn, device=device).to(st.params[0].dtype)}
    bufs["dst"] = torch.empty_like(bufs["src"])
    samples = {(p.key, k): [] for p in providers for k in _kinds(p, do_gen)}
    copy_samples: list[float] = []

    def do_copy() -> float:
        sync(device)
        t0 = time.perf_counter()
        bufs["dst"].copy_(bufs["src"])
        sync(device)
        return (time.perf_counter() - t0) * 1e3

    do_copy()
    for p in providers:  # warm-up (caches, worker threads, lazy initialisation)
        for k in _kinds(p, do_gen):
            _run_once(p, st, k == "gen")
    for _ in range(reps):
        copy_samples.append(do_copy())
        for p in providers:
            for k in _kinds(p, do_gen):
                samples[(p.key, k)].append(_run_once(p, st, k == "gen"))
    return samples, Timing(copy_samples), 2 * cn * st.elem


def _record(p: Provider, st: State, samples: dict, naive_ms: dict, bandwidth: float,
            do_gen: bool, do_memory: bool) -> dict[str, Any]:
    rec: dict[str, Any] = {"provider": p.name, "mode": p.mode, "base": p.base}
    for k in ("step", "gen"):
        pre = "" if k == "step" else "gen_"
        if k not in _kinds(p, do_gen):
            for field in ("median_ms", "iqr_ms", "samples_ms", "ratio_vs_naive", "bytes_moved",
                          "gbps", "floor_ms", "ratio_vs_floor", "extra_memory_bytes",
                          "extra_memory_vs_grad", "launches_per_step"):
                rec[pre + field] = None
            continue
        t = Timing(samples[(p.key, k)])
        fb = floor_bytes(st, p.mode, k == "gen", p.base)
        floor_ms = fb / bandwidth * 1e3
        rec.update({pre + "median_ms": t.median_ms, pre + "iqr_ms": t.iqr_ms,
                    pre + "min_ms": min(t.samples_ms), pre + "max_ms": max(t.samples_ms),
                    pre + "samples_ms": t.samples_ms,
                    pre + "ratio_vs_naive": (naive_ms[k] / t.median_ms) if k in naive_ms else None,
                    pre + "bytes_moved": fb, pre + "gbps": fb / (t.median_ms / 1e3) / 1e9,
                    pre + "floor_ms": floor_ms, pre + "ratio_vs_floor": t.median_ms / floor_ms})
        # launches per step (one counted run; it modifies the state like a rep)
        fn = p.gen if k == "gen" else p.step
        rec[pre + "launches_per_step"] = p.launches(lambda: fn(st, p.stash(st, st.retain)), st.device)
        b = measure_memory(p, st, k == "gen") if do_memory else None
        rec[pre + "extra_memory_bytes"] = b
        rec[pre + "extra_memory_vs_grad"] = None if b is None else b / st.grad_bytes
    return rec


def bench_workload(wl: Workload, providers: Sequence[Provider], device: torch.device,
                   reps: int, do_gen: bool, do_memory: bool,
                   on_device: bool = False) -> dict[str, Any]:
    """Measure ``providers`` on workload ``wl`` side by side (see the module docstring);
    ``on_device`` draws the tensors on ``device`` itself (:class:`State`)."""
    load_before = os.getloadavg()
    st = State(wl.shapes, wl.dtype, device, on_device=on_device)
    samples, copy_t, copy_bytes = _timed(providers, st, device, reps, do_gen, COPY_CAP_BYTES)
    bandwidth = copy_bytes / (copy_t.median_ms / 1e3)
    naive_ms = {k: Timing(samples[("naive", k)]).median_ms
                for k in ("step", "gen") if ("naive", k) in samples}
    out: dict[str, Any] = {
        "workload": wl.name, "dtype": str(wl.dtype).replace("torch.", ""),
        "n_tensors": len(wl.shapes), "numel": st.n, "grad_bytes": st.grad_bytes,
        "copy": {"bytes": copy_bytes, **copy_t.as_dict(), "gbps": bandwidth / 1e9},
        "providers": {p.key: _record(p, st, samples, naive_ms, bandwidth, do_gen, do_memory)
                      for p in providers},
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }
    out["summary"] = summary(out)
    st.free()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def summary(wl: dict[str, Any]) -> dict[str, Any]:
    """The ratios the targets are stated in: fused NGDiff+AdamW against the composites and
    against the floor of its own traffic; the torch backend against naive."""
    prov = wl["providers"]
    out: dict[str, Any] = {}
    fused = prov.get("torch-exact+adamw")
    if fused is not None:
        out["fused_adamw_ratio_vs_floor"] = fused["ratio_vs_floor"]
        for mode in ("foreach", "fused"):
            comp = prov.get(f"composite-{mode}+adamw")
            if comp is not None:
                out[f"composite_{mode}_over_fused"] = comp["median_ms"] / fused["median_ms"]
    if "torch-exact" in prov and "naive" in prov:
        out["torch_sgd_speedup_vs_naive"] = prov["torch-exact"]["ratio_vs_naive"]
        out["torch_sgd_ratio_vs_floor"] = prov["torch-exact"]["ratio_vs_floor"]
    return out


# ---------------------------------------------------------------------------- main
COLUMNS = [
    ("workload", "workload", ""), ("dtype", "dtype", ""), ("n_tensors", "tensors", "d"),
    ("provider", "provider", ""), ("median_ms", "step ms", ".1f"), ("iqr_ms", "IQR", ".1f"),
    ("min_ms", "min", ".1f"), ("max_ms", "max", ".1f"),
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
    ap.add_argument("--providers", default="naive,torch,triton,composite",
                    help="comma list of naive, torch, triton, composite")
    ap.add_argument("--bases", default=None,
                    help="comma list of sgd, momentum, adam, adamw (default sgd,adamw)")
    ap.add_argument("--modes", default="exact,compact", help="backend modes: exact, compact")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (default 7)")
    ap.add_argument("--synthetic-total", type=int, default=None,
                    help="total elements of the synthetic lists (default 2^24)")
    ap.add_argument("--synthetic-counts", default=None, help="default 10,100,1000,10000")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's own default)")
    ap.add_argument("--no-gen", action="store_true", help="skip the GeN step")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    return ap.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
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
        reps = args.reps or 7
        total = args.synthetic_total or (1 << 24)
        counts = [int(c) for c in (args.synthetic_counts or "10,100,1000,10000").split(",")]
    skipped: list[str] = []
    bases = (args.bases or "sgd,adamw").split(",")
    providers = make_providers(args.providers.split(","), args.modes.split(","), bases, device,
                               skipped)
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
          f"torch {machine['torch']}; reps {reps}; load average {machine['loadavg']}")
    results: dict[str, Any] = {}
    t_start = time.time()
    for wl in workloads:
        if wl.name == "gpt2-medium" and wl.dtype != torch.float32 and not args.smoke:
            continue  # medium in fp32 only (its naive step alone needs ~7 GB)
        chosen = providers
        if wl.name == "gpt2-medium" and not args.smoke:  # a base's state: 2.8 GB more each
            chosen = [p for p in providers if p.base == "sgd"]
        t0 = time.time()
        results[wl.key] = bench_workload(wl, chosen, device, reps, not args.no_gen,
                                         not args.no_memory)
        print(f"  {wl.key}: {len(wl.shapes)} tensors, {numel(wl.shapes):,} elements, "
              f"{time.time() - t0:.1f} s", flush=True)
    print()
    print(format_table(table_rows(results), COLUMNS))
    for key, wl in results.items():
        if wl["summary"]:
            print(f"{key}: " + ", ".join(f"{k} {v:.2f}" for k, v in wl["summary"].items())
                  + f" (load average {wl['loadavg_before'][0]:.1f} → {wl['loadavg_after'][0]:.1f})")
    for s in skipped:
        print(s)
    payload = {
        "benchmark": "optimizer_step",
        "machine": machine,
        "config": {"reps": reps, "lr": LR, "smoke": args.smoke, "workloads": names,
                   "dtypes": dtypes, "bases": bases, "providers": [p.key for p in providers],
                   "gen_probes": "excluded (stubbed: no forward between perturbations)",
                   "memory": "peak allocated beyond params + one gradient set (+ the base's "
                             "existing state), from g_R in .grad to the end of the step",
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

"""Part 3 of ``bench/gpu_check.py``: unlearning end to end.

* **llama**: a Llama-architecture model of about 1.1B parameters (TinyLlama's shape:
  hidden 2048, 22 layers, 32 heads with 4 key/value heads, MLP 5632, vocabulary 32,000),
  random init, bfloat16, batches of 8 × 256 synthetic tokens. Two optimizers on the same
  model take turns in blocks of 10 steps: NGDiff with GeN every 10 steps and NGDiff with a
  fixed rate. Per step, the two forward/backward passes and the optimizer step (GeN probes
  included) are timed apart (CUDA events on a GPU); reported: mean ms per step, the
  optimizer's share of a step, GeN's end-to-end overhead (mean step time with GeN every 10
  ÷ without) and the peak allocated memory over the timed steps.
* **cli**: ``fastngd unlearn --device cuda`` on the embedded model (one epoch, 5 steps).
  The embedded model is trained on the host by a background process started with the check
  (:func:`warm_cache`), while the other parts use the GPU.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

import torch

from bench._gpu_harness import EXPERIMENT_ONLY, read_json, save_json

__all__ = ["LlamaSizes", "MissingModuleStubs", "cli_item", "llama_item", "warm_cache"]


class LlamaSizes:
    """Model and run sizes of the end-to-end part (``smoke``: a tiny model)."""

    def __init__(self, smoke: bool) -> None:
        if smoke:
            self.model = {"vocab_size": 128, "hidden_size": 32, "intermediate_size": 64,
                          "num_hidden_layers": 1, "num_attention_heads": 4,
                          "num_key_value_heads": 2}
            self.batch, self.seq, self.period, self.blocks, self.warmup = 2, 8, 2, 1, 1
        else:
            self.model = {"vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632,
                          "num_hidden_layers": 22, "num_attention_heads": 32,
                          "num_key_value_heads": 4}
            # 2 blocks of 10 steps per configuration: 20 steps each, GeN every 10
            self.batch, self.seq, self.period, self.blocks, self.warmup = 8, 256, 10, 2, 2
        self.backend = "auto"  # Triton on a GPU (checked: launches are counted)
        self.lr = 1e-5


def build_llama(sizes: LlamaSizes, device: torch.device) -> torch.nn.Module:
    """A randomly initialised ``LlamaForCausalLM`` in bfloat16, built on ``device``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**sizes.model, max_position_embeddings=max(256, sizes.seq),
                         tie_word_embeddings=False, use_cache=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        with torch.device(device):
            model = LlamaForCausalLM(config)
    model.to(torch.bfloat16)
    model.train(False)  # deterministic closures (no dropout), as GeN requires
    return model


class _Clock:
    """Time marks: CUDA events on a GPU (read after one synchronisation at the end), host
    time on the CPU (whose operations are synchronous)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device

    def mark(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def ms(self, a: Any, b: Any) -> float:
        return float(a.elapsed_time(b)) if self.cuda else (b - a) * 1e3

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)


def _runner(model: torch.nn.Module, sizes: LlamaSizes, autolr: bool,
            batches: tuple[torch.Tensor, torch.Tensor], clock: _Clock
            ) -> Callable[[], tuple[Any, Any, Any, bool]]:
    """One step with its time marks: start, after both backward passes, after the step."""
    from fastngd import NGDiffOptimizer

    retain, forget = batches
    opt = NGDiffOptimizer(model.parameters(), lr=sizes.lr, rule="ngdiff", autolr=autolr,
                          autolr_every=sizes.period, backend=sizes.backend)

    def loss(batch: torch.Tensor) -> torch.Tensor:
        return model(input_ids=batch, labels=batch).loss

    def step() -> tuple[Any, Any, Any, bool]:
        m0 = clock.mark()
        loss_r = loss(retain)
        loss_r.backward()
        opt.stash_retain_grad(loss_r)
        loss_f = loss(forget)
        loss_f.backward()
        m1 = clock.mark()
        stats = opt.step_from_grads(loss_r, loss_f, closure_retain=lambda: loss(retain))
        return m0, m1, clock.mark(), stats.probe_losses is not None

    return step


def _summary(rows: Sequence[tuple[float, float, bool]]) -> dict[str, Any]:
    """Means over whole GeN periods of (backward passes ms, optimizer ms, GeN step?)."""
    fb = [r[0] for r in rows]
    opt = [r[1] for r in rows]
    gen = [r[1] for r in rows if r[2]]
    plain = [r[1] for r in rows if not r[2]]
    return {"steps": len(rows), "gen_steps": len(gen),
            "mean_ms": statistics.fmean(a + b for a, b in zip(fb, opt)),
            "forward_backward_mean_ms": statistics.fmean(fb),
            "optimizer_mean_ms": statistics.fmean(opt),
            "optimizer_gen_step_mean_ms": statistics.fmean(gen) if gen else None,
            "optimizer_plain_step_mean_ms": statistics.fmean(plain) if plain else None,
            "samples": [list(r) for r in rows]}


def llama_item(device: torch.device, smoke: bool) -> dict[str, Any]:
    """The timed end-to-end run (see the module docstring)."""
    from fastngd.kernels import launch_count

    sizes = LlamaSizes(smoke)
    t0 = time.perf_counter()
    model = build_llama(sizes, device)
    n_params = sum(p.numel() for p in model.parameters())
    g = torch.Generator(device="cpu").manual_seed(0)
    vocab = sizes.model["vocab_size"]
    batches = tuple(torch.randint(4, vocab, (sizes.batch, sizes.seq), generator=g).to(device)
                    for _ in range(2))
    clock = _Clock(device)
    runners = {name: _runner(model, sizes, name == "gen", batches, clock)  # type: ignore[arg-type]
               for name in ("gen", "fixed")}
    before = launch_count()
    for run in runners.values():  # compiles; the GeN optimizer's first call is a GeN step
        for _ in range(sizes.warmup):
            run()
    clock.sync()
    launches = launch_count() - before
    build_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    marks: dict[str, list[tuple[Any, Any, Any, bool]]] = {"gen": [], "fixed": []}
    for _ in range(sizes.blocks):
        for name, run in runners.items():
            marks[name] += [run() for _ in range(sizes.period)]
    clock.sync()
    rows = {name: [(clock.ms(a, b), clock.ms(b, c), gen) for a, b, c, gen in ms]
            for name, ms in marks.items()}
    out: dict[str, Any] = {name: _summary(r) for name, r in rows.items()}
    gen_overhead = out["gen"]["mean_ms"] / out["fixed"]["mean_ms"]
    share = out["fixed"]["optimizer_mean_ms"] / out["fixed"]["mean_ms"]
    param_bytes = n_params * 2
    peak = None
    if device.type == "cuda":
        peak = int(torch.cuda.max_memory_allocated(device))
        out["memory_at_start_bytes"] = int(base)
    out.update({
        "parameters": n_params, "param_bytes": param_bytes, "peak_allocated_bytes": peak,
        "peak_vs_params": peak / param_bytes if peak else None,
        "tokens_per_batch": sizes.batch * sizes.seq, "config": sizes.model,
        "period": sizes.period, "gen_every": sizes.period, "triton_launches_warmup": launches,
        "gen_overhead": gen_overhead, "optimizer_share": share, "setup_s": round(build_s, 2),
    })
    finite = all(math.isfinite(v) for r in rows.values() for row in r for v in row[:2])
    triton_used = launches > 0 if device.type == "cuda" else None
    out["triton_used"] = triton_used
    ok = finite and triton_used is not False and out["gen"]["gen_steps"] == sizes.blocks
    out["ok"] = ok
    out["summary"] = (f"{n_params / 1e9:.2f}B params: {out['fixed']['mean_ms']:.1f} ms/step, "
                      f"optimizer {share:.1%}, GeN/10 x{gen_overhead:.3f}"
                      + (f", peak {peak / 2**30:.1f} GiB" if peak else ""))
    return out


# ---------------------------------------------------------------------------- the CLI
def warm_cache(cache_dir: Optional[str], smoke: bool, done_file: str) -> None:
    """Train the embedded model into the cache (on the host), then write ``done_file``.

    In smoke mode a one-epoch stand-in of one small layer is stored under the embedded
    model's cache key (the smoke run checks the code path, not the model).
    """
    t0 = time.perf_counter()
    record: dict[str, Any] = {"cache_dir": cache_dir}
    try:
        from fastngd.models import default_cache_dir, embedded_model_key, get_embedded_model

        root = Path(cache_dir) if cache_dir else default_cache_dir()
        path = root / embedded_model_key("tofu-synthetic", 0)
        record["was_cached"] = path.exists()
        if smoke and not path.exists():
            from fastngd.models import TrainingRecipe, train_target_model

            tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                    "num_attention_heads": 2, "num_key_value_heads": 2}
            train_target_model("tofu-synthetic", seed=0, out_dir=path, progress=False,
                               recipe=TrainingRecipe(epochs=1, model=tiny))
        else:
            get_embedded_model("tofu-synthetic", seed=0, cache_dir=root, progress=False)
        record.update(status="ok", path=str(path))
    except Exception as exc:
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    record["seconds"] = round(time.perf_counter() - t0, 2)
    save_json(done_file, record)


class _Unavailable:
    """What a stubbed module hands out: fails, naming itself, when used."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> _Unavailable:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ImportError(f"{self._name} is not installed (stubbed by bench/gpu_check.py)")


class MissingModuleStubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Empty stand-ins for the modules of ``names`` that are not installed, so that code
    which imports them without using them can run; ``used`` lists the stubbed modules that
    were imported as submodules or had a name taken from them.

    :meth:`install` puts a stub module in ``sys.modules`` for every missing top-level name
    (also one blocked there with ``None``) and serves their submodules from the end of
    ``sys.meta_path``; installed modules are left alone. ``importlib.util.find_spec`` still
    answers ``None`` for a stubbed name, so that libraries probing for optional packages
    (transformers probes accelerate, scipy, sklearn... that way) do not take a stub for an
    installed package. :meth:`uninstall` undoes all of it.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = set(names)
        self.used: list[str] = []
        self._stubbed: set[str] = set()
        self._saved: dict[str, Any] = {}
        self._find_spec = importlib.util.find_spec

    def _missing(self, name: str) -> bool:
        if name in sys.modules:
            return sys.modules[name] is None
        return self._find_spec(name) is None

    def _stub(self, name: str) -> ModuleType:
        module = ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, self, is_package=True)
        self.exec_module(module)
        return module

    def _probe(self, name: str, package: Optional[str] = None) -> Any:
        full = importlib.util.resolve_name(name, package) if name.startswith(".") else name
        if full.split(".")[0] in self._stubbed:
            return None
        return self._find_spec(name, package)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.split(".")[0] not in self._stubbed:
            return None
        self.used.append(fullname)
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: Any) -> Optional[ModuleType]:
        return None

    def exec_module(self, module: ModuleType) -> None:
        def attribute(attr: str) -> _Unavailable:
            if attr.startswith("__"):  # __file__, __version__...: absent, as on a namespace
                raise AttributeError(attr)
            self.used.append(module.__name__)
            return _Unavailable(f"{module.__name__}.{attr}")

        module.__path__ = []  # type: ignore[attr-defined]
        module.__getattr__ = attribute  # type: ignore[attr-defined]

    def install(self) -> MissingModuleStubs:
        for name in sorted(self.names):
            if self._missing(name):
                self._stubbed.add(name)
                self._saved[name] = sys.modules.get(name, _ABSENT)
                sys.modules[name] = self._stub(name)
        importlib.util.find_spec = self._probe  # type: ignore[assignment]
        sys.meta_path.append(self)
        return self

    def uninstall(self) -> None:
        importlib.util.find_spec = self._find_spec
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for name in list(sys.modules):
            if name.split(".")[0] in self._stubbed:
                del sys.modules[name]
        for name, saved in self._saved.items():
            if saved is not _ABSENT:
                sys.modules[name] = saved


_ABSENT = object()


#: experiment-only modules: ``fastngd unlearn`` imports some of them (through
#: ``fastngd.reproduce`` and the evaluator: rouge_score, sklearn) without using them; those
#: missing are stubbed, and listed in the record. (transformers, which probes for some of
#: these names, finds no version or file on a stub and counts it as absent.)
CLI_STUBBABLE = EXPERIMENT_ONLY


def _wait_for(path: str, seconds: float) -> Optional[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done = read_json(path)
        if done is not None:
            return done
        time.sleep(0.5)
    return None


def cli_item(device: torch.device, smoke: bool, out_dir: str, cache_dir: Optional[str],
             warm_file: str, wait_s: float) -> dict[str, Any]:
    """``fastngd unlearn --device DEVICE --epochs 1`` (5 steps of forget10), run in this
    process through :func:`fastngd.cli.main` so that the Triton launches can be counted."""
    warm = _wait_for(warm_file, wait_s)
    stubs = MissingModuleStubs(CLI_STUBBABLE).install()
    from fastngd.kernels import launch_count

    from fastngd.cli import main

    out = Path(out_dir)
    argv = ["unlearn", "--device", str(device), "--out", str(out), "--overwrite",
            "--epochs", "1", "--batch-size", "8",
            "--threads", "1" if smoke else str(min(4, os.cpu_count() or 1))]
    if cache_dir:
        argv += ["--cache-dir", cache_dir]
    before = launch_count()
    t0 = time.perf_counter()
    rc = main(argv)
    seconds = time.perf_counter() - t0
    launches = launch_count() - before
    summary = read_json(out / "summary.json") or {}
    losses = [summary.get("final_loss_retain"), summary.get("final_loss_forget")]
    finite = all(isinstance(v, (int, float)) and math.isfinite(v) for v in losses)
    triton_used = launches > 0 if device.type == "cuda" else None
    ok = rc == 0 and summary.get("steps") == 5 and finite and triton_used is not False
    return {"ok": ok, "argv": ["fastngd", *argv], "returncode": rc, "cli_seconds": seconds,
            "steps": summary.get("steps"), "final_loss_retain": losses[0],
            "final_loss_forget": losses[1], "triton_launches": launches,
            "triton_used": triton_used, "embedded_model": warm,
            "stubbed_modules": sorted(set(stubs.used)),
            "summary": f"rc {rc}, {summary.get('steps')} steps, {launches} Triton launches"
                       + (f", stubbed {sorted(set(stubs.used))}" if stubs.used else "")}

"""Part 0 of ``bench/gpu_check.py``: what the machine is and whether the package fits it.

* ``versions``: host, torch, CUDA, triton (supported from 3.2), transformers, numpy, and how
  ``fastngd`` is installed (``fastngd.kernels`` must resolve to the ``kernels/`` folder);
* ``imports``: in a fresh interpreter, importing the optimizer, the backends, the kernels
  and the check's own modules must load none of :data:`EXPERIMENT_ONLY` (the GPU image has
  none of them); what transformers and ``fastngd unlearn``'s imports add is listed too;
* ``device``: name, compute capability, memory, a bf16 matmul;
* ``triton``: one trivial kernel compiled and run (separates "Triton does not work here"
  from "our kernels are wrong"), with its compile time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from bench._gpu_harness import EXPERIMENT_ONLY
from fastngd.backends.triton_version import triton_version_supported

__all__ = ["run_preflight"]

_ROOT = Path(__file__).resolve().parents[1]


def _modules(folder: str, package: str, prefix: str = "") -> tuple[str, ...]:
    """The modules of ``_ROOT/folder`` (``prefix`` filters the file names), as ``package.*``."""
    return tuple(f"{package}.{p.stem}" for p in sorted((_ROOT / folder).glob(f"{prefix}*.py"))
                 if p.stem != "__init__")


#: modules of the optimizer, backends, kernels (every file of ``kernels/``) and the check
#: itself with the benchmark modules it runs.
_CORE = (("fastngd", "fastngd.optimizer", "fastngd.backends.triton", "fastngd.bases",
          "fastngd.rules", "fastngd.step_sizes", "fastngd.reference")
         + _modules("kernels", "fastngd.kernels") + _modules("bench", "bench", "_gpu_")
         + ("bench._common", "bench._step_providers", "bench.optimizer_step"))
#: what the end-to-end parts add (cumulatively): transformers' Llama, and what
#: ``fastngd unlearn`` imports.
_EXTRA = {"transformers": ("transformers", "fastngd.models"),
          "fastngd unlearn": ("fastngd.cli", "fastngd.unlearn", "fastngd.reproduce.defaults",
                              "fastngd.reproduce.io")}


def _package_info() -> dict[str, Any]:
    import importlib.metadata
    import importlib.util

    info: dict[str, Any] = {}
    try:
        dist = importlib.metadata.distribution("fastngd")
        info["installed_version"] = dist.version
        direct = dist.read_text("direct_url.json")
        info["editable"] = bool(direct and json.loads(direct).get("dir_info", {}).get("editable"))
    except importlib.metadata.PackageNotFoundError:
        info["installed_version"] = None
    spec = importlib.util.find_spec("fastngd.kernels")
    info["fastngd_kernels"] = spec.origin if spec else None
    return info


def versions_item(device: torch.device) -> dict[str, Any]:
    from bench._common import machine_description

    machine = machine_description(device)
    out: dict[str, Any] = {"machine": machine, "package": _package_info()}
    for name in ("transformers", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except Exception as exc:
            out[name] = f"unavailable: {type(exc).__name__}: {exc}"
    triton = machine.get("triton")
    out["triton_supported"] = bool(triton) and triton_version_supported(triton)
    ok = out["triton_supported"] and out["package"]["fastngd_kernels"] is not None
    out["ok"] = ok
    out["summary"] = (f"torch {machine['torch']}, triton {triton}, "
                      f"{machine.get('gpu', machine['device'])}")
    return out


def _loaded_in_stages(stages: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """Experiment-only modules loaded after each stage of imports, in one fresh interpreter
    (stages run in order; each list counts what is loaded so far). A stage whose import
    fails reports the error and ends the run."""
    code = ("import importlib, json, sys\n"
            f"sys.argv = ['gpu_check']; sys.path.insert(0, {str(_ROOT)!r})\n"
            "importlib.import_module('bench.gpu_check')  # maps kernels/ on a plain checkout\n"
            f"out = {{}}\n"
            f"for label, mods in {list(stages.items())!r}:\n"
            "    try:\n"
            "        for m in mods: importlib.import_module(m)\n"
            f"        out[label] = [m for m in {list(EXPERIMENT_ONLY)!r} "
            "if sys.modules.get(m) is not None]\n"
            "    except Exception as e:\n"
            "        out[label] = f'import failed: {type(e).__name__}: {e}'\n"
            "        break\n"
            "print(json.dumps(out))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=180, env=dict(os.environ), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the import check failed: {proc.stderr.strip()[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def imports_item(smoke: bool) -> dict[str, Any]:
    """The import graph (the stages past the core only on a real run: they cost a
    transformers import)."""
    loaded = _loaded_in_stages({"core": _CORE} if smoke else {"core": _CORE, **_EXTRA})
    core = loaded.get("core")
    ok = core == []
    return {"ok": ok, "core_loads": core,
            "with": {k: v for k, v in loaded.items() if k != "core"},
            "summary": "core imports clean" if ok else f"core loads {core}"}


def device_item(device: torch.device) -> dict[str, Any]:
    if device.type != "cuda":
        return {"ok": True, "device": str(device), "summary": "no GPU (smoke run)"}
    props = torch.cuda.get_device_properties(device)
    free, total = torch.cuda.mem_get_info(device)
    a = torch.randn(512, 512, device=device, dtype=torch.bfloat16)
    err = float(((a @ a).float() - a.float() @ a.float()).abs().max())
    torch.cuda.synchronize(device)
    return {"ok": True, "name": props.name, "capability": f"{props.major}.{props.minor}",
            "total_bytes": int(total), "free_bytes": int(free),
            "multiprocessors": props.multi_processor_count, "bf16_matmul_max_err": err,
            "summary": f"{props.name}, sm_{props.major}{props.minor}, "
                       f"{free / 2**30:.1f}/{total / 2**30:.1f} GiB free"}


def triton_item(device: torch.device) -> dict[str, Any]:
    """``x ← x + 1`` with a trivial Triton kernel: compile, run, check."""
    import triton

    from bench._gpu_triton_probe import add_one

    x = torch.arange(1000, dtype=torch.float32, device=device)
    t0 = time.perf_counter()
    add_one[(triton.cdiv(1000, 256),)](x, 1000, BLOCK=256)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    first = time.perf_counter() - t0
    ok = torch.equal(x.cpu(), torch.arange(1, 1001, dtype=torch.float32))
    return {"ok": ok, "first_call_s": round(first, 3), "interpreted": device.type != "cuda",
            "summary": f"first call (compile + run) {first:.2f} s"}


def run_preflight(device: torch.device, smoke: bool, rec: Any) -> None:
    """Run the items of part 0 into the recorder ``rec``."""
    rec.run("versions", lambda: versions_item(device))
    rec.run("imports", lambda: imports_item(smoke))
    rec.run("device", lambda: device_item(device))
    rec.run("triton", lambda: triton_item(device))

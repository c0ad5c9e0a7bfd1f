"""The native CPU update: one C loop per work item (``_native_step.c``), built on first use;
and the Gram pass's three dot products in one loop (:func:`gram_item`).

On the CPU, torch's ops make the fused Adam step compute-bound: forming ``d``, the moments,
``u``, the step and the two products take about ten passes over an item that is hot in cache.
The C loop does all of it in one pass per element (the per-element formulas are in the C
file and in :mod:`fastngd.backends.base`), so the step runs at the speed of its memory
traffic. It is compiled once per machine with the system C compiler (``$CC``, else ``cc``)
into the cache folder (``$FASTNGD_CACHE``, else ``$XDG_CACHE_HOME/fastngd``, else
``~/.cache/fastngd``), keyed by a hash of the source, the compiler, its flags and the CPU, and
loaded with :mod:`ctypes` (whose calls release the GIL, so the backend's worker threads run
items in parallel).

``FASTNGD_NATIVE``: unset or ``auto`` uses the loop when it builds (one warning if it does
not, and the torch-op path runs, with the same results up to rounding); ``0`` never uses it;
``1`` requires it (an error if it cannot be built).

Only float32 items of the linear rule with every scalar a normal float32 number (or zero) go
through it: other dtypes, the elementwise rules and extreme weights keep the torch-op path,
which handles their ranges (:mod:`fastngd.backends._fused`).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

__all__ = ["NativeBuildWarning", "applies", "build", "cache_dir", "gram_item", "library", "step_item"]

SOURCE = Path(__file__).with_name("_native_step.c")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp-simd", "-fPIC", "-shared")
_KINDS = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 3}
_lock = threading.Lock()
_loaded: dict[str, Optional[ctypes.CDLL]] = {}


class NativeBuildWarning(RuntimeWarning):
    """The native CPU loop could not be built; the torch-op path runs instead."""


def _mode() -> str:
    mode = os.environ.get("FASTNGD_NATIVE", "auto").strip().lower() or "auto"
    if mode not in ("auto", "0", "1"):
        raise ValueError(f"FASTNGD_NATIVE must be auto, 0 or 1, got {mode!r}")
    return mode


def cache_dir() -> Path:
    """Where built libraries are kept (see the module docstring)."""
    if os.environ.get("FASTNGD_CACHE"):
        return Path(os.environ["FASTNGD_CACHE"]) / "native"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastngd" / "native"


def _cpu_signature() -> str:
    """The CPU model and feature flags (``-march=native`` code is only valid on such a CPU)."""
    text = platform.machine() + platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "model name", "Features", "CPU part")):
                    text += line
                if line.strip() == "":
                    break  # the first processor is enough
    except OSError:
        pass
    return text


def _compiler() -> str:
    return os.environ.get("CC") or "cc"


def build(out_dir: Optional[Path] = None) -> Path:
    """Compile the loop (if not already built) and return the library's path. Raises
    ``RuntimeError`` with the compiler's message when it cannot be built."""
    cc = _compiler()
    if shutil.which(cc) is None:
        raise RuntimeError(f"no C compiler {cc!r} on PATH (set CC)")
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + repr((cc, FLAGS)).encode() + _cpu_signature().encode())
    folder = out_dir or cache_dir()
    lib = folder / f"fastngd_step_{key.hexdigest()[:16]}.so"
    if lib.exists():
        return lib
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
    os.close(fd)
    try:
        for flags in (FLAGS, tuple(f for f in FLAGS if f != "-march=native")):
            done = subprocess.run([cc, *flags, "-o", tmp, str(SOURCE), "-lm"],
                                  capture_output=True, text=True, check=False)
            if done.returncode == 0:
                os.replace(tmp, lib)  # atomic: a concurrent build writes the same file
                return lib
        raise RuntimeError(f"{cc} failed: {done.stderr.strip()[-2000:]}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path) -> ctypes.CDLL:
    dll = ctypes.CDLL(str(path))
    fn = dll.fastngd_step_f32
    ptr, dbl = ctypes.c_void_p, ctypes.c_double
    fn.argtypes = [ctypes.c_int64, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ctypes.c_int,
                   dbl, dbl, dbl, dbl, dbl, dbl, dbl, dbl, dbl, ptr]
    fn.restype = None
    gram = dll.fastngd_gram_f32
    gram.argtypes = [ctypes.c_int64, ptr, ptr, ptr]
    gram.restype = None
    return dll


def library() -> Optional[ctypes.CDLL]:
    """The loaded loop, building it on first use; None when ``FASTNGD_NATIVE=0`` or (in
    ``auto`` mode) when it cannot be built, after one :class:`NativeBuildWarning`."""
    mode = _mode()
    if mode == "0":
        return None
    key = f"{_compiler()}|{cache_dir()}"
    with _lock:
        if key not in _loaded:
            try:
                _loaded[key] = _load(build())
            except (RuntimeError, OSError) as exc:
                if mode == "1":
                    raise RuntimeError(f"FASTNGD_NATIVE=1 but the native CPU loop cannot be "
                                       f"built: {exc}") from exc
                warnings.warn(f"fastngd: the native CPU update could not be built ({exc}); "
                              "the torch-op path runs instead (same results, slower for "
                              "Adam-family bases). Set FASTNGD_NATIVE=0 to silence this.",
                              NativeBuildWarning, stacklevel=2)
                _loaded[key] = None
        return _loaded[key]


def _normal32(x: float) -> bool:
    return x == 0.0 or 2.0**-125 <= abs(x) <= 2.0**126


def applies(p: Tensor, operands: Sequence[Tensor], scalars: Sequence[float]) -> bool:
    """Whether :func:`step_item` can take this item: CPU float32 contiguous operands of
    ``p``'s size, and every scalar a normal float32 number or zero (the C loop works in
    float32 and must not round a weight to a subnormal or to infinity)."""
    n = p.numel()
    return (p.device.type == "cpu" and all(
        t.dtype == torch.float32 and t.is_contiguous() and t.numel() == n and t.device == p.device
        for t in (p, *operands)) and all(_normal32(float(s)) for s in scalars))


def gram_item(dll: ctypes.CDLL, r: Tensor, f: Tensor) -> tuple[float, float, float]:
    """``(r·r, f·f, r·f)`` of one float32 item in one pass, summed in float32 (the caller
    applies :func:`fastngd.backends._fused.gram_row`'s check and float64 recomputation);
    ``r`` and ``f`` pass :func:`applies`."""
    out = (ctypes.c_double * 3)()
    dll.fastngd_gram_f32(r.numel(), r.data_ptr(), f.data_ptr(), out)
    return out[0], out[1], out[2]


def _ptr(t: Optional[Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


def step_item(dll: ctypes.CDLL, kind: str, p: Tensor, r: Tensor, f: Tensor,
              state: Sequence[Tensor], row: Sequence[float], w: Sequence[float],
              u_out: Optional[Tensor] = None, backup_out: Optional[Tensor] = None,
              ) -> tuple[float, float]:
    """One item's fused update (see the module and C file docstrings); returns ``(r·u, f·u)``.

    ``row`` is the tensor's ``hyper`` row ``(lr, wd, β₁, β₂, ε, bc₁, bc₂)``, ``w`` its
    ``(w_R, w_F)``. With ``u_out`` None: ``p ← p − lr·u``; otherwise ``u`` is written to
    ``u_out`` (which may be ``r`` or ``f``) and θ to ``backup_out`` (None: not written), and
    ``p`` is left unchanged. The caller checks :func:`applies` first."""
    lr, wd, b1, b2, eps, bc1, bc2 = row
    s1 = state[0] if state else None
    s2 = state[1] if len(state) > 1 else None
    dots = (ctypes.c_double * 2)()
    dll.fastngd_step_f32(p.numel(), _ptr(p), _ptr(r), _ptr(f), _ptr(s1), _ptr(s2),
                         _ptr(u_out), _ptr(backup_out), _KINDS[kind], w[0], w[1], lr, wd,
                         b1, b2, eps, bc1, bc2, dots)
    return dots[0], dots[1]

"""Harness of ``bench/gpu_check.py``: parts run as child processes under a time budget.

Every part of the check runs in a process of its own, so that a sticky CUDA error (an illegal
memory access poisons the whole CUDA context), a hang or an out-of-memory kill in one part
does not stop the others. The parent:

* grants each part ``min(own budget, remaining − reserve for the later parts)`` seconds
  (:func:`grant_seconds`) and kills the part's process group when it runs past that
  (:func:`run_part`: status ``"timeout"``);
* copies the child's output, line by line, to its own stdout and to the log;
* merges what the child wrote so far (:class:`PartRecorder` saves after every item, so a
  killed part keeps its finished items) into the report, written after every part.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Callable, Optional

from fastngd.atomic import atomic_write

__all__ = [
    "EXPERIMENT_ONLY",
    "Log",
    "PartRecorder",
    "PartRun",
    "child_env",
    "grant_seconds",
    "lost_context_check",
    "python_cmd",
    "read_json",
    "run_part",
    "save_json",
]

#: packages of the ``experiments`` extra that the optimizer, the kernels and the check must
#: not need (the GPU machine's image has none of them).
EXPERIMENT_ONLY: tuple[str, ...] = (
    "datasets", "rouge_score", "scipy", "sklearn", "matplotlib", "accelerate", "pandas",
    "nltk",
)


def grant_seconds(remaining_s: float, own_s: float, later_reserve_s: float) -> float:
    """Seconds a part may run: its own budget, cut so that ``later_reserve_s`` stays for the
    parts after it; never negative.

    ``grant = max(0, min(own_s, remaining_s − later_reserve_s))``.
    """
    return max(0.0, min(own_s, remaining_s - later_reserve_s))


def save_json(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as indented JSON atomically (complete or absent, never torn)."""
    atomic_write(path, lambda fh: (json.dump(payload, fh, indent=2, default=str),
                                   fh.write("\n")))


def read_json(path: str | Path) -> Optional[dict[str, Any]]:
    """The JSON object in ``path``, or ``None`` when it is absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class Log:
    """Lines to stdout and to a log file at once (each flushed, so a kill loses nothing)."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (held for the run)
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            print(line, flush=True)
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class PartRecorder:
    """The child side: results of one part, saved to ``path`` after every item.

    ``item(name)`` is a context manager that times one item and stores ``{"ok": False,
    "error": ...}`` when it raises (the part goes on with its next item); ``stop`` set by a
    caller (e.g. after a lost CUDA context) makes every later item record ``skipped``.
    """

    def __init__(self, path: str | Path, part: str) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = {"part": part, "items": {}, "complete": False}
        self.stop: Optional[str] = None
        self.save()

    def save(self) -> None:
        save_json(self.path, self.data)

    def put(self, key: str, value: Any) -> None:
        """Store a top-level field and save."""
        self.data[key] = value
        self.save()

    def record(self, name: str, value: dict[str, Any]) -> None:
        """Store the result of item ``name`` and save."""
        self.data["items"][name] = value
        self.save()

    def run(self, name: str, fn: Callable[[], dict[str, Any]],
            on_error: Optional[Callable[[BaseException], Optional[str]]] = None,
            ) -> Optional[dict[str, Any]]:
        """Run ``fn`` as item ``name``: print progress, record its result or its error.

        ``on_error(exc)`` may return a reason to stop the remaining items of the part.
        """
        if self.stop is not None:
            self.record(name, {"ok": False, "skipped": self.stop})
            return None
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:
            value = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc()[-3000:]}
            if on_error is not None:
                self.stop = on_error(exc)
        value.setdefault("seconds", round(time.perf_counter() - t0, 3))
        self.record(name, value)
        flag = "ok" if value.get("ok", True) else "FAILED"
        detail = value.get("error") or value.get("summary") or ""
        print(f"  [{flag}] {name} ({value['seconds']:.1f} s) {detail}".rstrip(), flush=True)
        return value

    def finish(self) -> None:
        self.data["complete"] = True
        self.save()


class PartRun:
    """Outcome of one child process: ``status`` is ``"ok"`` (exit 0), ``"failed"`` (other
    exit status), ``"timeout"`` (killed at its deadline) or ``"not_run"`` (no time left)."""

    def __init__(self, status: str, seconds: float, returncode: Optional[int],
                 granted_s: float) -> None:
        self.status = status
        self.seconds = seconds
        self.returncode = returncode
        self.granted_s = granted_s

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "seconds": round(self.seconds, 2),
                "returncode": self.returncode, "granted_s": round(self.granted_s, 1)}


#: line prefixes of the profiler's own chatter (one pair per profiled call), not copied.
_NOISE = ("USDT:", "STAGE:")


def _pump(stream: IO[bytes], prefix: str, log: Callable[[str], None]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if not line.startswith(_NOISE):
            log(prefix + line)


def _kill_group(proc: subprocess.Popen, grace_s: float = 3.0) -> None:  # type: ignore[type-arg]
    """SIGTERM the child's process group (it was started as a new session), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_part(cmd: Sequence[str], env: Mapping[str, str], granted_s: float,
             log: Callable[[str], None], prefix: str = "") -> PartRun:
    """Run ``cmd`` with ``env`` for at most ``granted_s`` seconds, copying its output
    (stdout and stderr, merged) to ``log`` with ``prefix``."""
    if granted_s <= 0:
        return PartRun("not_run", 0.0, None, granted_s)
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=dict(env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    assert proc.stdout is not None
    pump = threading.Thread(target=_pump, args=(proc.stdout, prefix, log), daemon=True)
    pump.start()
    status = "ok"
    try:
        rc: Optional[int] = proc.wait(timeout=granted_s)
        if rc != 0:
            status = "failed"
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        rc, status = proc.returncode, "timeout"
    except BaseException:
        _kill_group(proc)
        raise
    pump.join(timeout=5)
    return PartRun(status, time.perf_counter() - t0, rc, granted_s)


def lost_context_check(device: Any) -> Callable[[BaseException], Optional[str]]:
    """An ``on_error`` for :meth:`PartRecorder.run`: after an error on a GPU, frees cached
    memory (an out-of-memory error leaves it fragmented) and checks that the CUDA context
    still works; if it does not (a sticky error such as an illegal memory access), returns
    the reason to skip every later item of the part, which would fail the same way."""

    def check(exc: BaseException) -> Optional[str]:
        if getattr(device, "type", "cpu") != "cuda":
            return None
        import gc

        import torch

        try:
            gc.collect()
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
            torch.ones(1, device=device).add_(1).item()
        except Exception as err:
            return f"CUDA context lost after {type(exc).__name__}: {exc} ({err})"
        return None

    return check


def child_env(base: Mapping[str, str], extra: Mapping[str, Optional[str]]) -> dict[str, str]:
    """``base`` with ``extra`` applied (a ``None`` value removes the variable)."""
    env = dict(base)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def python_cmd(script: str | Path, *args: str) -> list[str]:
    """``[python, -u, script, *args]`` with this interpreter, unbuffered."""
    return [sys.executable, "-u", str(script), *args]

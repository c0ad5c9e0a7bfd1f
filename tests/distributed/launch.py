"""Start a small gloo job as separate processes, the way ``torchrun`` does, and clean up.

Every rank is a fresh ``python`` process with the environment ``torchrun`` would set
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``) in its own process group, so a hang or a failure is ended by killing exactly
those groups; nothing outlives :func:`run_ranks`.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank_env(rank: int, world: int, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of one rank: the variables ``torchrun`` sets, one thread per rank."""
    env = dict(os.environ)
    env.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
        OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
    )
    if sys.platform.startswith("linux") and Path("/sys/class/net/lo").exists():
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    env.update(extra or {})
    return env


@dataclass
class JobResult:
    """Exit codes and the combined output of every rank (``-9`` for a rank killed on timeout)."""

    returncodes: list[int]
    logs: list[str]
    timed_out: bool

    @property
    def ok(self) -> bool:
        return not self.timed_out and all(rc == 0 for rc in self.returncodes)

    def report(self, tail: int = 4000) -> str:
        """A readable summary for an assertion message."""
        parts = [f"timed_out={self.timed_out} returncodes={self.returncodes}"]
        for rank, log in enumerate(self.logs):
            parts.append(f"--- rank {rank} (last {tail} chars) ---\n{log[-tail:]}")
        return "\n".join(parts)


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (Linux ``/proc``; empty elsewhere), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _signal(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        try:
            os.killpg(pid, sig)  # each started process leads its own group
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process (a ``torchrun`` launcher then stops its workers), then SIGKILL
    it and every process it started that is still alive after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    below = _descendants(proc.pid)
    _signal([proc.pid], signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _signal([proc.pid, *below], signal.SIGKILL)


def run_ranks(
    argv: Sequence[str],
    world: int,
    workdir: Path,
    timeout: float = 120.0,
    extra_env: dict[str, str] | None = None,
    per_rank: bool = True,
) -> JobResult:
    """Run ``python *argv`` as ``world`` ranks (``per_rank``) or once as a launcher
    (``per_rank=False``, e.g. ``-m torch.distributed.run ...``), wait at most ``timeout``
    seconds, kill every started process on timeout, failure of a rank, or any error. A job
    that failed because its port was taken meanwhile is run once more on a new port.
    """
    result = _run_once(argv, world, workdir, timeout, extra_env, per_rank)
    if not result.ok and any("address already in use" in log.lower() for log in result.logs):
        result = _run_once(argv, world, workdir, timeout, extra_env, per_rank)
    return result


def _run_once(
    argv: Sequence[str],
    world: int,
    workdir: Path,
    timeout: float = 120.0,
    extra_env: dict[str, str] | None = None,
    per_rank: bool = True,
) -> JobResult:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    n = world if per_rank else 1
    procs: list[subprocess.Popen] = []
    files = []
    timed_out = False
    try:
        for rank in range(n):
            log = open(workdir / f"log{rank}.txt", "w+b")  # noqa: SIM115 - closed below
            files.append(log)
            env = rank_env(rank, world, port, extra_env) if per_rank else rank_env(0, 1, port, extra_env)
            procs.append(
                subprocess.Popen(
                    [sys.executable, *argv], stdout=log, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + timeout
        while True:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes):
                break
            if any(c not in (None, 0) for c in codes):
                time.sleep(2.0)  # let the others report, then stop them
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            _stop(p)
        for p in procs:
            p.wait()
    logs = []
    for f in files:
        f.seek(0)
        logs.append(f.read().decode(errors="replace"))
        f.close()
    return JobResult([p.returncode for p in procs], logs, timed_out)

"""Worker threads for the torch backend's streaming passes on the CPU.

Large CPU buckets are processed by one worker thread per intra-op thread
(``torch.get_num_threads()``), each taking the next work item when done with the last and
running its operations with one intra-op thread: no OpenMP fork/join per operation (which
costs dearly when the cores are shared with other work: a parallel region waits for its
slowest thread), and a worker slowed down by other processes simply takes fewer items. Every
item writes its own outputs, so the results are the same bits whichever thread ran what.
Small buckets, and calls made while a profiler or a ``__torch_dispatch__`` mode watches the
calling thread, run on the calling thread (with one intra-op thread), item by item, with the
same results.
"""
from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Sequence
from typing import Any, Callable, Optional

import torch

__all__ = ["PARALLEL_MIN", "run_items"]

#: below this many elements in a bucket, everything runs on the calling thread.
PARALLEL_MIN = 1 << 20

_WORKER_NAME = "fastngd-torch-backend"


class _Workers:
    """Persistent threads running work on behalf of the calling thread.

    Each worker runs its operations with one intra-op thread and under ``no_grad``; the
    caller blocks until every share is done and re-raises the first error.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._tasks: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in range(n)]
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        main_threads = torch.get_num_threads()
        for k in range(n):
            threading.Thread(target=self._loop, args=(self._tasks[k],), daemon=True,
                             name=f"{_WORKER_NAME}-{k}").start()
        self.run([lambda: None] * n)  # each worker has set its own thread count
        # the thread count of threads started later (a process-wide default) is restored
        torch.set_num_threads(main_threads)

    def _loop(self, tasks: queue.SimpleQueue) -> None:
        torch.get_num_threads()  # the per-thread lazy initialisation happens first...
        torch.set_num_threads(1)  # ...so that this setting stays with this thread
        while True:
            fn = tasks.get()
            err: Optional[BaseException] = None
            try:
                with torch.no_grad():
                    fn()
            except BaseException as e:  # noqa: BLE001 (re-raised by the caller)
                err = e
            self._done.put(err)

    def run(self, fns: Sequence[Callable[[], None]]) -> None:
        """Run ``fns[k]`` on worker ``k`` and wait for all of them."""
        with self._lock:
            for q, fn in zip(self._tasks, fns):
                q.put(fn)
            errors = [self._done.get() for _ in fns]
        for err in errors:
            if err is not None:
                raise err


def _in_worker() -> bool:
    return threading.current_thread().name.startswith(_WORKER_NAME)


def _threads_allowed() -> bool:
    """Whether work may leave the calling thread: not while a profiler or a
    ``__torch_dispatch__`` mode (both per-thread) is watching the caller."""
    if torch._C._autograd._profiler_enabled():
        return False
    return torch._C._len_torch_dispatch_stack() == 0


_WORKERS: dict[int, _Workers] = {}
_WORKERS_LOCK = threading.Lock()


def _workers(n: int) -> _Workers:
    with _WORKERS_LOCK:
        w = _WORKERS.get(n)
        if w is None or w.pid != os.getpid():  # threads do not survive a fork
            w = _WORKERS[n] = _Workers(n)
        return w


def run_items(items: Sequence[Any], sizes: Sequence[int], device: torch.device,
              fn: Callable[[int, Any], None]) -> None:
    """Call ``fn(j, items[j])`` for every item: on the calling thread, or (large CPU buckets)
    on the worker threads, each taking the next item when done with one (a worker slowed
    down by other processes simply takes fewer). Which thread runs an item does not change
    its result: every item writes its own outputs."""
    total = sum(sizes)
    n = torch.get_num_threads() if device.type == "cpu" and not _in_worker() else 1
    if n <= 1 or total < PARALLEL_MIN or len(items) < 2 or not _threads_allowed():
        # one intra-op thread here too: an operation on one item is too small to gain from
        # a parallel region, and each region can stall on a core busy with other work
        if n > 1:
            torch.set_num_threads(1)
        try:
            for j, it in enumerate(items):
                fn(j, it)
        finally:
            if n > 1:
                torch.set_num_threads(n)
        return
    n = min(n, len(items))
    counter = itertools.count()  # items are handed out one at a time (next() is atomic)

    def go() -> None:
        for j in iter(counter.__next__, None):
            if j >= len(items):
                return
            fn(j, items[j])

    _workers(n).run([go] * n)

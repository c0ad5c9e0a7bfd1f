"""The pure-PyTorch backend: runs on any device, the CPU path and the reference fast path.

Scalars (learning rates, weights) are read on the host once per call (one small
device-to-host copy; free on the CPU).

Every operation is a stream over the bucket, cut into *work items*: a slice of
:data:`STREAM` consecutive elements of one large tensor, or a group of small tensors
(about :data:`STREAM` elements in all, batched into one ``torch._foreach_*`` call or one
concatenation). Each item is processed while it is hot in cache: the Gram reduction reads
``r`` and ``f`` from memory once and takes its three dot products from cache; the update
reads ``p``, ``r``, ``f`` once and writes ``p`` once. This is what brings the CPU path to the
streaming floor (6 memory accesses per element for Gram + update) instead of the 8 to 10 of
whole-tensor ``foreach`` calls.

On the CPU, large buckets are processed by one worker thread per intra-op thread
(``torch.get_num_threads()``), each taking the next item when done with the last and running
its operations with one intra-op thread: no OpenMP fork/join per operation (which costs dearly
when the cores are shared with other work: a parallel region waits for its slowest thread),
and a worker slowed down by other processes simply takes fewer items. Every item writes its
own outputs (the Gram reduction one row of partial sums, added up in a fixed order), so the
results are the same bits whichever thread ran what. Small buckets, and calls made while a
profiler or a ``__torch_dispatch__`` mode watches the calling thread, run on the calling
thread (with one intra-op thread), item by item, with the same results.

Float32/float64 tensors with exact storage are updated in place (no temporaries). Other
dtypes, compact codes and the elementwise SAGO mode go through float32 temporaries of at most
:data:`CHUNK` (SAGO), :data:`CAST_CHUNK` (other dtypes) or :data:`COMPACT_CHUNK` (compact codes)
elements in all (shared out between the workers), so the extra memory stays a few MB whatever
the model size; every result is rounded once on store. Compact retain
entries are quantized and dequantized slice by slice (:func:`store_retain`), giving the same
codes and values as :mod:`fastngd.compact` without a tensor-sized temporary.
"""
from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Sequence
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from fastngd.compact import (
    BLOCK_SIZE,
    QuantizedTensor,
    encode_blocks,
    num_blocks,
    quantize_blockwise,
)

from .base import Backend, accumulation_dtype

__all__ = ["CHUNK", "STREAM", "TorchBackend", "dense"]

#: elements of float32 temporaries alive at once in the converting (non-in-place) paths,
#: summed over the worker threads.
CHUNK = 1 << 16
#: elements per work item on the in-place paths (about 1 MB of float32 per operand: the
#: operands of one item stay in the per-core cache between the passes over it).
STREAM = 1 << 18
#: tensors with fewer elements are batched into groups instead of sliced.
SMALL = 1 << 13
#: elements per work item when quantizing (about 35 bytes of temporaries per element).
QUANT_CHUNK = 1 << 17
#: elements of temporaries alive at once, over all workers, on the linear paths of dtypes
#: other than float32/float64 (about 24 bytes per element: a few MB).
CAST_CHUNK = 1 << 18
#: elements of temporaries alive at once, over all workers, when reading compact codes
#: (about 30 bytes per element: a few MB, against the codes' 0.25 bytes per gradient byte).
COMPACT_CHUNK = 1 << 19
#: below this many elements in a bucket, everything runs on the calling thread.
PARALLEL_MIN = 1 << 20


# a work item: (tensor indices, start, stop); start is None for whole tensors (a group of
# small tensors, or one non-contiguous tensor).
_Item = tuple[list[int], Optional[int], Optional[int]]


def dense(t: Any, dtype: torch.dtype | None = None) -> Tensor:
    """A plain tensor of a stored retain entry (dequantizing compact codes)."""
    if not isinstance(t, Tensor):
        t = t.dequantize()
    return t if dtype is None else t.to(dtype)


# ---------------------------------------------------------------------------- workers
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


def _run_items(items: Sequence[_Item], sizes: Sequence[int], device: torch.device,
               fn: Callable[[int, _Item], None]) -> None:
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


def _plan(tensor_lists: Sequence[Sequence[Any]], size: int, keys: Optional[Sequence[Any]] = None,
          skip: Optional[Sequence[bool]] = None) -> tuple[list[_Item], list[int]]:
    """Cut a bucket into work items of about ``size`` elements.

    A tensor whose entries (across ``tensor_lists``) are all contiguous is sliced (large) or
    grouped with its small neighbours of the same ``keys`` value; any other tensor is one
    whole-tensor item. Compact entries count as contiguous (they are read by slices).
    """
    first = tensor_lists[0]
    items: list[_Item] = []
    sizes: list[int] = []
    group: list[int] = []
    gsize = 0
    gkey: Any = None

    def flush() -> None:
        nonlocal group, gsize
        if group:
            items.append((group, None, None))
            sizes.append(gsize)
        group, gsize = [], 0

    for i in range(len(first)):
        n = first[i].numel()
        if n == 0 or (skip is not None and skip[i]):
            continue
        flat = all(not isinstance(ts[i], Tensor) or ts[i].is_contiguous() for ts in tensor_lists)
        key = None if keys is None else keys[i]
        if flat and n <= SMALL:
            if group and (gsize + n > size or key != gkey):
                flush()
            group.append(i)
            gsize += n
            gkey = key
            continue
        flush()
        if not flat:
            items.append(([i], None, None))
            sizes.append(n)
            continue
        for s in range(0, n, size):
            items.append(([i], s, min(s + size, n)))
            sizes.append(min(size, n - s))
    flush()
    return items, sizes


# ---------------------------------------------------------------------------- reading
def _region(t: Any, s: Optional[int], e: Optional[int]) -> Tensor:
    """The item's region of ``t``: a flat slice, or the whole tensor (shape kept)."""
    if isinstance(t, Tensor):
        return t if s is None else t.view(-1)[s:e]
    if s is None:
        return t.dequantize()
    return t.dequantize_slice(s, e)


def _read(t: Any, s: Optional[int], e: Optional[int], acc: torch.dtype) -> Tensor:
    """The region of ``t`` in the accumulation dtype (a view when no conversion is needed)."""
    x = _region(t, s, e)
    return x if x.dtype == acc else x.to(acc)


def _direction(r: Tensor, f: Tensor, w_r: float, w_f: float, sago: bool) -> Tensor:
    """``w_R·r − w_F·f``, or SAGO's ``w_R·r ⊙ m − w_F·f ⊙ (1 − m)`` with ``m = [r·f > 0]``."""
    if sago:
        # judged from the signs, so that no product can underflow to a false "no conflict"
        return torch.where(torch.sign(r) * torch.sign(f) > 0, r * w_r, f * (-w_f))
    return r * w_r - f * w_f


def _stream_size(device: torch.device) -> int:
    """Item size of the in-place paths: :data:`STREAM` on the CPU; whole tensors elsewhere
    (an accelerator gains nothing from cache-sized slices, and each one is a launch)."""
    return STREAM if device.type == "cpu" else 1 << 62


def _converting_size(device: torch.device, compact: bool = False, sago: bool = True) -> int:
    """Item size of the converting paths, shared out between the workers: :data:`CHUNK` for
    the elementwise SAGO direction, :data:`COMPACT_CHUNK` when compact codes are read,
    :data:`CAST_CHUNK` when only the dtype is converted."""
    n = torch.get_num_threads() if device.type == "cpu" else 1
    total = COMPACT_CHUNK if compact else CHUNK if sago else CAST_CHUNK
    return max(BLOCK_SIZE, (total // max(1, n)) // BLOCK_SIZE * BLOCK_SIZE)


def _split(t: Tensor, s: Optional[int], e: Optional[int], size: int) -> list[tuple[Any, Any]]:
    """Sub-ranges of at most ``size`` elements of an item's region (one for whole tensors)."""
    if s is None or e is None:
        return [(None, None)]
    return [(a, min(a + size, e)) for a in range(s, e, size)]


def _quantize_into(flat: Tensor, codes: Tensor, absmax: Tensor, s: int, e: int) -> None:
    """Codes and block scales of ``flat[s:e]`` (``s`` a multiple of the block size), written
    into ``codes`` and ``absmax`` (:func:`fastngd.compact.encode_blocks`)."""
    c, a = encode_blocks(flat[s:e])
    codes[s:e] = c
    absmax[s // BLOCK_SIZE:s // BLOCK_SIZE + a.numel()] = a


class TorchBackend(Backend):
    """Multi-tensor operations written with ``torch`` ops (see :class:`Backend`)."""

    name = "torch"

    def store_retain(self, grads: Sequence[Tensor], storage: str = "exact") -> list:
        if storage != "int8":
            return super().store_retain(grads, storage)
        if not grads:
            return []
        out: list[Any] = [None] * len(grads)
        big: dict[int, tuple[Tensor, Tensor, Tensor]] = {}  # index -> flat, codes, absmax
        items: list[_Item] = []
        sizes: list[int] = []
        for k, g in enumerate(grads):
            n = g.numel()
            if n == 0 or not g.is_contiguous():
                items.append(([k], None, None))
                sizes.append(n)
                continue
            big[k] = (g.detach().view(-1),
                      torch.empty(n, dtype=torch.uint8, device=g.device),
                      torch.empty(num_blocks(n), dtype=torch.float32, device=g.device))
            for a in range(0, n, QUANT_CHUNK):
                items.append(([k], a, min(a + QUANT_CHUNK, n)))
                sizes.append(min(QUANT_CHUNK, n - a))

        def work(j: int, it: _Item) -> None:
            (k,), a, b = it
            if a is None:
                out[k] = quantize_blockwise(grads[k])
            else:
                flat, codes, absmax = big[k]
                _quantize_into(flat, codes, absmax, a, b)  # type: ignore[arg-type]

        _run_items(items, sizes, grads[0].device, work)
        for k, (_, codes, absmax) in big.items():
            out[k] = QuantizedTensor(codes, absmax, grads[k].shape, grads[k].dtype)
        return out

    def gram(self, retain: Sequence[Any], forget: Sequence[Tensor]) -> Tensor:
        if not forget:
            raise ValueError("gram() needs at least one tensor")
        acc = accumulation_dtype(forget[0].dtype)
        device = forget[0].device
        compact = not all(isinstance(r, Tensor) for r in retain)
        fast = forget[0].dtype == acc and not compact
        size = _stream_size(device) if fast else _converting_size(device, compact, sago=False)
        items, sizes = _plan([retain, forget], size)
        partials = torch.zeros(len(items), 3, dtype=acc, device=device)

        def work(j: int, it: _Item) -> None:
            idx, s, e = it
            row = partials[j]
            if len(idx) == 1:
                a = _read(retain[idx[0]], s, e, acc).reshape(-1)
                b = _read(forget[idx[0]], s, e, acc).reshape(-1)
            else:
                a = torch.cat([_read(retain[i], None, None, acc).view(-1) for i in idx])
                b = torch.cat([_read(forget[i], None, None, acc).view(-1) for i in idx])
            torch.dot(a, a, out=row[0])
            torch.dot(b, b, out=row[1])
            torch.dot(a, b, out=row[2])

        _run_items(items, sizes, device, work)
        return partials.sum(0)

    def update(
        self,
        params: Sequence[Tensor],
        retain: Sequence[Any],
        forget: Sequence[Tensor],
        lr: Tensor,
        weights: Tensor,
        sago: bool = False,
    ) -> None:
        if not params:
            return
        lrs = lr.tolist()
        w_r, w_f = weights.tolist()
        device = params[0].device
        acc = accumulation_dtype(params[0].dtype)
        compact = not all(isinstance(r, Tensor) for r in retain)
        fast = not sago and params[0].dtype == acc and not compact
        size = _stream_size(device) if fast else _converting_size(device, compact, sago)
        items, sizes = _plan([params, retain, forget], size, keys=lrs,
                             skip=[x == 0.0 for x in lrs])

        def work(j: int, it: _Item) -> None:
            idx, s, e = it
            lr_i = lrs[idx[0]]
            if fast:
                if len(idx) > 1:
                    ps = [params[i] for i in idx]
                    torch._foreach_add_(ps, [retain[i] for i in idx], alpha=-lr_i * w_r)
                    torch._foreach_add_(ps, [forget[i] for i in idx], alpha=lr_i * w_f)
                else:
                    i = idx[0]
                    p = _region(params[i], s, e)
                    p.add_(_region(retain[i], s, e), alpha=-lr_i * w_r)
                    p.add_(_region(forget[i], s, e), alpha=lr_i * w_f)
                return
            for i in idx:
                lr_i = lrs[i]
                a0, b0 = (s, e) if len(idx) == 1 else (None, None)
                for a, b in _split(params[i], a0, b0, size):
                    p = _region(params[i], a, b)
                    d = _direction(_read(retain[i], a, b, acc).view(p.shape),
                                   _read(forget[i], a, b, acc), w_r, w_f, sago)
                    if p.dtype == acc:
                        p.sub_(d, alpha=lr_i)
                    else:
                        p.copy_(p.to(acc).sub_(d, alpha=lr_i))

        _run_items(items, sizes, device, work)

    def direction_and_backup(
        self,
        params: Sequence[Tensor],
        retain: Sequence[Any],
        forget: Sequence[Tensor],
        weights: Tensor,
        sago: bool = False,
    ) -> tuple[list[Tensor], list[Tensor]]:
        w_r, w_f = weights.tolist()
        if not params:
            return [], []
        device = params[0].device
        acc = accumulation_dtype(params[0].dtype)
        compact = [not isinstance(r, Tensor) for r in retain]
        fast = not sago and params[0].dtype == acc and not any(compact)
        size = _stream_size(device) if fast else _converting_size(device, any(compact), sago)
        # compact: d over the forget buffer, fresh backups; exact: d over r, θ into f
        backups = [p.detach().clone() if c else f for p, f, c in zip(params, forget, compact)]
        directions = [f if c else r for r, f, c in zip(retain, forget, compact)]
        items, sizes = _plan([params, retain, forget], size)

        def work(j: int, it: _Item) -> None:
            idx, s, e = it
            if fast:
                if len(idx) > 1:
                    rs, fs = [retain[i] for i in idx], [forget[i] for i in idx]
                    torch._foreach_mul_(rs, w_r)
                    torch._foreach_add_(rs, fs, alpha=-w_f)
                    torch._foreach_copy_(fs, [params[i] for i in idx])
                else:
                    i = idx[0]
                    r, f = _region(retain[i], s, e), _region(forget[i], s, e)
                    r.mul_(w_r).sub_(f, alpha=w_f)
                    f.copy_(_region(params[i], s, e))
                return
            for i in idx:
                a0, b0 = (s, e) if len(idx) == 1 else (None, None)
                for a, b in _split(params[i], a0, b0, size):
                    f = _region(forget[i], a, b)
                    d = _direction(_read(retain[i], a, b, acc).view(f.shape), f.to(acc),
                                   w_r, w_f, sago)
                    if compact[i]:
                        f.copy_(d)
                    else:
                        _region(retain[i], a, b).copy_(d)
                        f.copy_(_region(params[i], a, b))

        _run_items(items, sizes, device, work)
        return directions, backups

    def perturb(
        self,
        params: Sequence[Tensor],
        backup: Sequence[Tensor],
        direction: Sequence[Tensor],
        scale: Tensor,
    ) -> None:
        if not params:
            return
        scales = scale.tolist()
        device = params[0].device
        acc = accumulation_dtype(params[0].dtype)
        fast = params[0].dtype == acc
        size = _stream_size(device) if fast else _converting_size(device, sago=False)
        items, sizes = _plan([params, backup, direction], size, keys=scales)

        def work(j: int, it: _Item) -> None:
            idx, s, e = it
            s_i = scales[idx[0]]
            if len(idx) > 1 and (fast or s_i == 0.0):
                ps = [params[i] for i in idx]
                torch._foreach_copy_(ps, [backup[i] for i in idx])
                if s_i != 0.0:
                    torch._foreach_add_(ps, [direction[i] for i in idx], alpha=s_i)
                return
            for i in idx:
                s_i = scales[i]
                a0, b0 = (s, e) if len(idx) == 1 else (None, None)
                if s_i == 0.0:
                    _region(params[i], a0, b0).copy_(_region(backup[i], a0, b0))
                elif fast:
                    p = _region(params[i], a0, b0)
                    if p.is_contiguous():
                        torch.add(_region(backup[i], a0, b0), _region(direction[i], a0, b0),
                                  alpha=s_i, out=p)
                    else:
                        p.copy_(backup[i])
                        p.add_(direction[i], alpha=s_i)
                else:
                    for a, b in _split(params[i], a0, b0, size):
                        p = _region(params[i], a, b)
                        p.copy_(_read(backup[i], a, b, acc).add_(
                            _read(direction[i], a, b, acc), alpha=s_i))

        _run_items(items, sizes, device, work)

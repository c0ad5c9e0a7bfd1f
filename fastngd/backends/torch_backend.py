"""The pure-PyTorch backend: runs on any device, the CPU path and the reference fast path.

Scalars (``hyper``, ``weights``, ``scale``) are read on the host once per call (one small
device-to-host copy; free on the CPU).

Every operation is a stream over the bucket, cut into *work items* (:mod:`._items`): a slice
of about :data:`STREAM_BYTES` of operands of one large tensor, or a group of small tensors.
Each item is processed while it is hot in cache (:mod:`._fused`): the Gram reduction reads
``r`` and ``f`` from memory once and takes its three dot products from cache; the fused
:meth:`TorchBackend.step` reads ``p``, ``r``, ``f`` and the base's state once, forms ``d``, the
new state, ``u`` and the products ``r·u``, ``f·u`` in cache, and writes ``p`` and the state
once (Adam: 5 reads and 3 writes per element; with the Gram pass, 10 accesses in all). Large
CPU buckets run on worker threads (:mod:`._workers`); every item writes its own outputs (one
row of partial sums, added up in a fixed order), so results do not depend on the threads.

Float32/float64 tensors with exact storage are updated in place (the item's only temporary
is one scratch buffer for ``d`` and ``u``). The plain SGD step of a linear rule without weight
decay (``u = d``) needs no scratch at all: ``p`` is updated from ``r`` and ``f`` directly, and
its products ``r·u = w_R·‖r‖² − w_F·r·f``, ``f·u = w_R·r·f − w_F·‖f‖²`` come from the
per-tensor rows of the Gram pass just made on the same (unmodified) buffers, which the backend
remembers through weak references and the tensors' version counters. Other dtypes, compact codes and the elementwise
SAGO modes go through temporaries of at most :data:`CHUNK` (SAGO), :data:`CAST_CHUNK` (other
dtypes) or :data:`COMPACT_CHUNK` (compact codes) elements in all (shared out between the
workers), so the extra memory stays a few MB whatever the model size; every result is rounded
once on store. Compact retain entries are quantized and dequantized slice by slice
(:func:`store_retain`), giving the same codes and values as :mod:`fastngd.compact` without a
tensor-sized temporary.
"""
from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Optional

import torch
from torch import Tensor

from fastngd.compact import (
    BLOCK_SIZE,
    QuantizedTensor,
    encode_blocks,
    num_blocks,
    quantize_blockwise,
)

from . import _fused, native
from ._items import Item, bounds, plan, read, region, write
from ._workers import run_items
from .base import BASE_KINDS, Backend, accumulation_dtype, scalar_dtype, state_names

__all__ = ["CAST_CHUNK", "CHUNK", "COMPACT_CHUNK", "STREAM", "STREAM_BYTES", "TorchBackend"]

#: elements of float32 temporaries alive at once in the converting (non-in-place) paths of
#: the elementwise SAGO modes, summed over the worker threads.
CHUNK = 1 << 16
#: bytes of operands per work item on the in-place paths (the operands of one item stay in
#: the per-core cache between the operations on it).
STREAM_BYTES = 3 << 20
#: elements per work item of the in-place update when the native loop runs it (one pass per
#: element, so items need not fit in cache: larger items mean fewer calls).
NATIVE_ITEM = 1 << 20
#: elements per work item of the in-place Gram pass (two float32 operands).
STREAM = STREAM_BYTES // 12
#: elements per work item when quantizing (about 35 bytes of temporaries per element).
QUANT_CHUNK = 1 << 17
#: elements of temporaries alive at once, over all workers, on the linear paths of dtypes
#: other than float32/float64 (about 24 bytes per element: a few MB).
CAST_CHUNK = 1 << 18
#: elements of temporaries alive at once, over all workers, when reading compact codes
#: (about 30 bytes per element: a few MB, against the codes' 0.25 bytes per gradient byte).
COMPACT_CHUNK = 1 << 19


def _in_place(dtype: torch.dtype, retain: Sequence[Any], mode: str = "linear") -> bool:
    return (dtype == accumulation_dtype(dtype) and mode == "linear"
            and all(isinstance(r, Tensor) for r in retain))


def _item_size(device: torch.device, in_place: bool, operands: int, compact: bool = False,
               mode: str = "linear") -> int:
    """Elements per item: :data:`STREAM_BYTES` of ``operands`` on the CPU's in-place paths,
    whole tensors on accelerators (an accelerator gains nothing from cache-sized slices, and
    each one is a launch); on the converting paths the chunk of :data:`CHUNK`,
    :data:`COMPACT_CHUNK` or :data:`CAST_CHUNK`, shared out between the workers."""
    if in_place:
        return max(BLOCK_SIZE, STREAM_BYTES // (4 * operands)) if device.type == "cpu" else 1 << 62
    n = torch.get_num_threads() if device.type == "cpu" else 1
    total = COMPACT_CHUNK if compact else CHUNK if mode != "linear" else CAST_CHUNK
    return max(BLOCK_SIZE, (total // max(1, n)) // BLOCK_SIZE * BLOCK_SIZE)


def _quantize_into(flat: Tensor, codes: Tensor, absmax: Tensor, s: int, e: int) -> None:
    """Codes and block scales of ``flat[s:e]`` (``s`` a multiple of the block size), written
    into ``codes`` and ``absmax`` (:func:`fastngd.compact.encode_blocks`)."""
    c, a = encode_blocks(flat[s:e])
    codes[s:e] = c
    absmax[s // BLOCK_SIZE:s // BLOCK_SIZE + a.numel()] = a


def _tensors_of(entries: Sequence[Any]) -> list[Tensor]:
    """The tensors behind retain/forget entries (codes and scales of compact ones)."""
    out: list[Tensor] = []
    for t in entries:
        out += [t] if isinstance(t, Tensor) else [t.codes, t.absmax]
    return out


class _GramMemo:
    """The per-tensor Gram rows of the last :meth:`TorchBackend.gram` call, valid while the
    very same tensors are unmodified (weak references and version counters: nothing is kept
    alive, and an in-place write or a new buffer at a recycled address invalidates it)."""

    def __init__(self) -> None:
        self._refs: list[Any] = []
        self._versions: list[int] = []
        self.rows: Optional[Tensor] = None

    def store(self, retain: Sequence[Any], forget: Sequence[Tensor], rows: Tensor) -> None:
        ts = _tensors_of(retain) + _tensors_of(forget)
        self._refs = [weakref.ref(t) for t in ts]
        self._versions = [t._version for t in ts]
        self.rows = rows

    def lookup(self, retain: Sequence[Any], forget: Sequence[Tensor]) -> Optional[Tensor]:
        ts = _tensors_of(retain) + _tensors_of(forget)
        if self.rows is None or len(ts) != len(self._refs):
            return None
        for t, ref, version in zip(ts, self._refs, self._versions):
            if ref() is not t or t._version != version:
                return None
        return self.rows


def _normal32(x: float) -> bool:
    return x == 0.0 or 2.0**-125 <= abs(x) <= 2.0**126


def _check(params: Sequence[Tensor], state: Sequence[Sequence[Tensor]], hyper: Tensor,
           weights: Tensor, kind: str) -> None:
    if kind not in BASE_KINDS:
        raise ValueError(f"unknown base {kind!r}; valid: {', '.join(BASE_KINDS)}")
    n = len(params)
    if len(state) != len(state_names(kind)) or any(len(s) != n for s in state):
        raise ValueError(f"base {kind!r} needs {len(state_names(kind))} state lists of {n} tensors")
    if tuple(hyper.shape) != (n, 7) or tuple(weights.shape) != (n, 2):
        raise ValueError(f"hyper must be ({n}, 7) and weights ({n}, 2), got "
                         f"{tuple(hyper.shape)} and {tuple(weights.shape)}")


class TorchBackend(Backend):
    """Multi-tensor operations written with ``torch`` ops (see :class:`Backend`)."""

    name = "torch"

    def __init__(self) -> None:
        self._memo = _GramMemo()

    def store_retain(self, grads: Sequence[Tensor], storage: str = "exact") -> list:
        if storage != "int8":
            return super().store_retain(grads, storage)
        if not grads:
            return []
        out: list[Any] = [None] * len(grads)
        big: dict[int, tuple[Tensor, Tensor, Tensor]] = {}  # index -> flat, codes, absmax
        items: list[Item] = []
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

        def work(j: int, it: Item) -> None:
            (k,), a, b = it
            if a is None:
                out[k] = quantize_blockwise(grads[k])
            else:
                flat, codes, absmax = big[k]
                _quantize_into(flat, codes, absmax, a, b)  # type: ignore[arg-type]

        run_items(items, sizes, grads[0].device, work)
        for k, (_, codes, absmax) in big.items():
            out[k] = QuantizedTensor(codes, absmax, grads[k].shape, grads[k].dtype)
        return out

    # ------------------------------------------------------------------ Gram
    def gram(self, retain: Sequence[Any], forget: Sequence[Tensor],
             per_tensor: bool = False) -> Tensor:
        if not forget:
            raise ValueError("gram() needs at least one tensor")
        device = forget[0].device
        acc = accumulation_dtype(forget[0].dtype)
        compact = not all(isinstance(r, Tensor) for r in retain)
        fast = _in_place(forget[0].dtype, retain)
        dll = native.library() if device.type == "cpu" and not _fused.deferred(device) else None
        size = _item_size(device, fast, 2, compact)
        if dll is not None and fast:
            size = max(size, NATIVE_ITEM)
        items, sizes = plan([retain, forget], size)
        # one row per (item, tensor): a group's tensors each get their own
        parts = [(i, it if len(it[0]) == 1 else ([i], None, None)) for it in items for i in it[0]]
        starts = [0]
        for it in items:
            starts.append(starts[-1] + len(it[0]))
        rows: list[Any] = [None] * len(parts)
        row_of: Callable[[Tensor, Tensor], Any] = _fused.gram_row
        if _fused.deferred(device):
            row_of = _fused.gram_row_deferred
        elif dll is not None:
            row_of = functools.partial(_native_gram_row, dll)

        def work(j: int, it: Item) -> None:
            for k in range(starts[j], starts[j + 1]):
                sub = parts[k][1]
                rows[k] = row_of(read(retain, sub, acc), read(forget, sub, acc))

        def exact(k: int) -> tuple[float, float, float]:
            sub = parts[k][1]
            return _fused.gram_row(read(retain, sub, acc).double(), read(forget, sub, acc).double())

        run_items(items, sizes, device, work)
        if _fused.deferred(device):
            rows = _fused.settle_rows(rows, exact)
        sums = [[0.0, 0.0, 0.0] for _ in forget]
        for (i, _), values in zip(parts, rows):  # a fixed order of summation
            sums[i] = [a + b for a, b in zip(sums[i], values)]
        out = torch.tensor(sums, dtype=torch.float64)
        self._memo.store(retain, forget, out)
        result = out if per_tensor else out.sum(0)
        return result.to(device=device, dtype=scalar_dtype(device))

    # ------------------------------------------------------------------ update
    def step(self, params: Sequence[Tensor], retain: Sequence[Any], forget: Sequence[Tensor],
             state: Sequence[Sequence[Tensor]], hyper: Tensor, weights: Tensor, kind: str,
             mode: str = "linear") -> Tensor:
        return self._update(params, retain, forget, state, hyper, weights, kind, mode, None)

    def advance_and_backup(self, params: Sequence[Tensor], retain: Sequence[Any],
                           forget: Sequence[Tensor], state: Sequence[Sequence[Tensor]],
                           hyper: Tensor, weights: Tensor, kind: str, mode: str = "linear",
                           ) -> tuple[list[Tensor], list[Tensor], Tensor]:
        compact = [not isinstance(r, Tensor) for r in retain]
        # exact: u over r, θ into f; compact: u over the forget buffer, fresh backups
        update = [f if c else r for r, f, c in zip(retain, forget, compact)]
        backup = [p.detach().clone() if c else f for p, f, c in zip(params, forget, compact)]
        products = self._update(params, retain, forget, state, hyper, weights, kind, mode,
                                (update, backup))
        return update, backup, products

    def _update(self, params: Sequence[Tensor], retain: Sequence[Any],
                forget: Sequence[Tensor], state: Sequence[Sequence[Tensor]], hyper: Tensor,
                weights: Tensor, kind: str, mode: str,
                outputs: tuple[list[Tensor], list[Tensor]] | None) -> Tensor:
        """:meth:`step` (``outputs`` None: ``p ← p − lr·u``) or :meth:`advance_and_backup`
        (``outputs = (update, backup)``: ``u`` and θ written there, ``p`` unchanged)."""
        _check(params, state, hyper, weights, kind)
        n = len(params)
        device = params[0].device if n else torch.device("cpu")
        if not n:
            return torch.zeros(2, dtype=scalar_dtype(device), device=device)
        rows, ws = hyper.tolist(), weights.tolist()
        acc = accumulation_dtype(params[0].dtype)
        fast = _in_place(params[0].dtype, retain, mode)
        if fast and kind == "sgd" and all(row[1] == 0.0 for row in rows):
            done = self._plain_sgd(params, retain, forget, rows, ws, outputs)
            if done is not None:
                return done
        compact = not all(isinstance(r, Tensor) for r in retain)
        skip = [row[0] == 0.0 for row in rows]
        lazy = _fused.deferred(device)
        dll = native.library() if device.type == "cpu" and not lazy and mode == "linear" else None
        size = _item_size(device, fast, 4 + len(state), compact, mode)
        if dll is not None and fast:  # one pass per element: no cache to fit, fewer calls
            size = max(size, NATIVE_ITEM)
        keys = [tuple(r) + tuple(w) for r, w in zip(rows, ws)]
        lists = [params, retain, forget, *state]
        items, sizes = plan(lists, size, keys=keys, skip=skip if outputs is None else None)
        partials: list[Any] = [None] * len(items)

        def work(j: int, it: Item) -> None:
            i0 = it[0][0]
            if skip[i0]:  # advance_and_backup of a skipped row: u = 0, backup written
                for i in it[0]:
                    _skipped_row(params[i], outputs, i, bounds(it))  # type: ignore[arg-type]
                return
            p, r, f = (read(t, it, acc) for t in (params, retain, forget))
            st = [read(s, it, acc) for s in state]
            if dll is not None and native.applies(p, [r, f, *st], [*rows[i0], *ws[i0]]):
                partials[j] = _native_item(dll, kind, it, p, r, f, st, rows[i0], ws[i0],
                                           params, retain, forget, state, outputs)
                return
            u, k = _fused.advance(kind, mode, p, r, f, st, rows[i0], ws[i0])  # update k·u
            if lazy:  # products stay on the device (r or f may be overwritten below)
                partials[j] = torch.stack([_fused.dot_exact(r, u), _fused.dot_exact(f, u)]) * k
            else:
                partials[j] = (k * _fused.dot(r, u), k * _fused.dot(f, u))
            for s_list, s_val in zip(state, st):
                write(s_list, it, s_val)
            if outputs is None:
                p.add_(u, alpha=-rows[i0][0] * k)
                write(params, it, p)
            else:
                update, backup = outputs
                write(update, it, u.mul_(k) if k != 1.0 else u)
                if backup[i0] is forget[i0]:  # exact storage: θ into the forget buffer
                    write(backup, it, read(params, it, params[i0].dtype))

        run_items(items, sizes, device, work)
        parts = [x for x in partials if x is not None]
        if not parts:
            return torch.zeros(2, dtype=scalar_dtype(device), device=device)
        if lazy:
            total = torch.stack([x.to(scalar_dtype(device)) for x in parts]).sum(0)
        else:
            total = torch.tensor(parts, dtype=torch.float64).sum(0)
        return total.to(device=device, dtype=scalar_dtype(device))

    def _plain_sgd(self, params: Sequence[Tensor], retain: Sequence[Tensor],
                   forget: Sequence[Tensor], rows: list[list[float]], ws: list[list[float]],
                   outputs: tuple[list[Tensor], list[Tensor]] | None) -> Optional[Tensor]:
        """``u = d`` (linear rule, no weight decay, exact storage, float32/float64): the
        update from ``r`` and ``f`` directly, the products from the memoized Gram rows; None
        when those rows are not the current buffers' (or a factor is outside float32's
        normal range), and the general path runs instead."""
        memo = self._memo.lookup(retain, forget)
        if memo is None:
            return None
        wide = params[0].dtype == torch.float64
        factors = [(w[0], w[1]) if outputs is not None else (row[0] * w[0], row[0] * w[1])
                   for row, w in zip(rows, ws)]
        if not wide and not all(_normal32(a) and _normal32(b) for a, b in factors):
            return None
        device = params[0].device
        skip = [row[0] == 0.0 for row in rows]
        keys = [tuple(r) + tuple(w) for r, w in zip(rows, ws)]
        items, sizes = plan([params, retain, forget], _item_size(device, True, 3), keys=keys,
                            skip=skip if outputs is None else None)

        def work(j: int, it: Item) -> None:
            idx, rng = it[0], bounds(it)
            if skip[idx[0]]:
                for i in idx:
                    _skipped_row(params[i], outputs, i, rng)  # type: ignore[arg-type]
                return
            a, b = factors[idx[0]]
            ps, rs, fs = ([region(t[i], *rng) for i in idx] for t in (params, retain, forget))
            if outputs is None:  # p ← p − lr·(w_R·r − w_F·f)
                torch._foreach_add_(ps, rs, alpha=-a)
                torch._foreach_add_(ps, fs, alpha=b)
            else:  # u = w_R·r − w_F·f over r, θ into f
                torch._foreach_mul_(rs, a)
                torch._foreach_add_(rs, fs, alpha=-b)
                torch._foreach_copy_(fs, ps)

        run_items(items, sizes, device, work)
        live = torch.tensor([not x for x in skip], dtype=torch.float64)
        w = torch.tensor(ws, dtype=torch.float64) * live[:, None]
        rr, ff, rf = memo[:, 0], memo[:, 1], memo[:, 2]
        total = torch.stack([(w[:, 0] * rr - w[:, 1] * rf).sum(), (w[:, 0] * rf - w[:, 1] * ff).sum()])
        return total.to(device=device, dtype=scalar_dtype(device))

    # ------------------------------------------------------------------ GeN probes
    def perturb(self, params: Sequence[Tensor], backup: Sequence[Tensor],
                direction: Sequence[Tensor], scale: Tensor) -> None:
        if not params:
            return
        scales = scale.tolist()
        device = params[0].device
        acc = accumulation_dtype(params[0].dtype)
        fast = params[0].dtype == acc
        items, sizes = plan([params, backup, direction], _item_size(device, fast, 3),
                            keys=scales)

        def work(j: int, it: Item) -> None:
            s_i = scales[it[0][0]]
            if s_i == 0.0:  # bit-exact restore
                write(params, it, read(backup, it, params[0].dtype))
                return
            if fast and len(it[0]) == 1 and region(params[it[0][0]], *bounds(it)).is_contiguous():
                dst = region(params[it[0][0]], *bounds(it))
                torch.add(region(backup[it[0][0]], *bounds(it)),
                          region(direction[it[0][0]], *bounds(it)), alpha=s_i, out=dst)
                return
            value = read(backup, it, acc)
            value = value.add(read(direction, it, acc), alpha=s_i)
            write(params, it, value)

        run_items(items, sizes, device, work)


def _native_gram_row(dll: Any, r: Tensor, f: Tensor) -> tuple[float, float, float]:
    """:func:`_fused.gram_row` with the float32 sums from one pass of the native loop."""
    if not native.applies(r, [f], []):
        return _fused.gram_row(r, f)
    return _fused.gram_row(r, f, native.gram_item(dll, r, f))


def _native_item(dll: Any, kind: str, it: Item, p: Tensor, r: Tensor, f: Tensor,
                 st: Sequence[Tensor], row: Sequence[float], w: Sequence[float],
                 params: Sequence[Tensor], retain: Sequence[Any], forget: Sequence[Tensor],
                 state: Sequence[Sequence[Tensor]],
                 outputs: tuple[list[Tensor], list[Tensor]] | None) -> tuple[float, float]:
    """One item through the native loop (:mod:`.native`): the operands ``p, r, f, st`` as
    :func:`read` gave them, written back where they are temporaries. In
    :meth:`TorchBackend.advance_and_backup`, ``u`` goes over the operand whose buffer is the
    update's (``r`` for exact storage, ``f`` for compact) and θ over ``f`` when the forget
    buffer is the backup."""
    i0 = it[0][0]
    if outputs is None:
        products = native.step_item(dll, kind, p, r, f, st, row, w)
        write(params, it, p)
    else:
        update, backup = outputs
        u = r if update[i0] is retain[i0] else f
        theta = f if backup[i0] is forget[i0] else None
        products = native.step_item(dll, kind, p, r, f, st, row, w, u_out=u, backup_out=theta)
        write(update, it, u)
        if theta is not None:
            write(backup, it, theta)
    for s_list, s_val in zip(state, st):
        write(s_list, it, s_val)
    return products


def _skipped_row(p: Tensor, outputs: tuple[list[Tensor], list[Tensor]], i: int,
                 rng: tuple[Any, Any]) -> None:
    """A skipped tensor in :meth:`TorchBackend.advance_and_backup`: ``u = 0`` and the backup
    of θ written (its gradients, maybe NaN, are not read); the state is not touched."""
    update, backup = outputs
    if backup[i] is not p:
        region(backup[i], *rng).copy_(region(p, *rng))
    region(update[i], *rng).zero_()

"""The Triton backend: fused multi-tensor kernels over cached pointer tables.

Every operation on a bucket (tensors of one device and dtype) is a constant number of kernel
launches, whatever the number of tensors: ``gram`` 2 (per-chunk partials, then a fixed-order
sum), ``update`` 1, ``direction_and_backup`` 1, ``perturb`` 1, ``store_retain("int8")`` 1.
The kernels run over an int64 table of fixed-size chunks (see
:mod:`fastngd.kernels.pointer_table`), cached and rebuilt only when a data pointer or a
shape changes. Scalars (``lr``, ``weights``, ``scale``) are read from device memory: no
host synchronisation.

Tensors the kernels cannot address as flat memory (non-contiguous ones) are handled by a
per-tensor PyTorch fallback with the same arithmetic (accumulation dtype, one rounding on
store), still without host synchronisation; zero-size tensors are skipped.

On CPU tensors the kernels run in Triton's interpreter, which must be selected before Triton
is imported: set ``TRITON_INTERPRET=1`` in the environment (or use ``backend="torch"``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from fastngd.compact import (
    QuantizedTensor,
    code_midpoints,
    code_table,
    num_blocks,
    quantize_blockwise,
)

from .base import Backend, accumulation_dtype

__all__ = ["TritonBackend", "require_triton"]

_NO_TRITON = (
    "backend='triton' needs the 'triton' package, which could not be imported ({err}); "
    "install it (pip install triton) or use backend='torch'"
)
_CPU_NEEDS_INTERPRETER = (
    "backend='triton' got CPU tensors but Triton's interpreter is off: set the environment "
    "variable TRITON_INTERPRET=1 before triton (and fastngd.kernels) is imported, e.g. "
    "`TRITON_INTERPRET=1 python train.py`, or use backend='torch' for CPU tensors"
)


def require_triton() -> Any:
    """Import and return the ``triton`` module, or raise an ImportError naming the fix."""
    try:
        import triton
    except Exception as err:  # ImportError, or a broken installation
        raise ImportError(_NO_TRITON.format(err=err)) from err
    return triton


def _is_pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


def _flat_ok(t: Tensor) -> bool:
    return t.is_contiguous()


class TritonBackend(Backend):
    """Fused Triton implementation of :class:`~fastngd.backends.base.Backend`.

    ``chunk_size`` elements per program (a power of two, a multiple of 256 and of
    ``block_size``); ``block_size`` elements per vector step inside a program (default 1024
    on a GPU; under the interpreter, whose cost is per operation rather than per element,
    one step per chunk). ``table_cache_size`` pointer tables are kept (LRU).
    """

    name = "triton"

    def __init__(
        self,
        chunk_size: int = 4096,
        block_size: int | None = None,
        table_cache_size: int = 64,
    ):
        require_triton()
        from fastngd.kernels import gen, gram, quant, update
        from fastngd.kernels._common import is_interpreted
        from fastngd.kernels.pointer_table import PointerTableCache

        self._interpreted = is_interpreted(update._update_kernel)
        if block_size is None:
            block_size = chunk_size if self._interpreted else min(1024, chunk_size)
        if not _is_pow2(block_size) or block_size < 16:
            raise ValueError(f"block_size must be a power of two ≥ 16, got {block_size}")
        if not _is_pow2(chunk_size) or chunk_size < 256 or chunk_size % block_size:
            raise ValueError(
                f"chunk_size must be a power of two ≥ 256 and a multiple of block_size "
                f"({block_size}), got {chunk_size}"
            )
        self.chunk_size = chunk_size
        self.block_size = block_size
        self._k_gram, self._k_update, self._k_gen, self._k_quant = gram, update, gen, quant
        self._tables = PointerTableCache(table_cache_size)

    # ------------------------------------------------------------------ helpers
    def cache_info(self) -> Any:
        """Counters of the pointer-table cache (``builds``, ``hits``, ``size``)."""
        return self._tables.cache_info()

    def check_device(self, device: torch.device) -> None:
        """Raise a RuntimeError naming the fix when the kernels cannot run on ``device``
        (CPU without ``TRITON_INTERPRET=1``, or a device Triton does not target)."""
        if device.type == "cpu" and not self._interpreted:
            raise RuntimeError(_CPU_NEEDS_INTERPRETER)
        if device.type not in ("cpu", "cuda", "xpu"):
            raise RuntimeError(
                f"backend='triton' runs on CUDA/XPU tensors (and CPU ones with "
                f"TRITON_INTERPRET=1), got tensors on {device}; use backend='torch'"
            )

    @staticmethod
    def _check_bucket(
        named: Sequence[tuple[str, Sequence[Any]]], scalars: Sequence[tuple[str, Tensor, int]] = ()
    ) -> tuple[torch.device, torch.dtype]:
        """Validate equal lengths, one device and dtype, equal shapes; return them."""
        n = len(named[0][1])
        ref: Tensor | None = None
        for name, seq in named:
            if len(seq) != n:
                raise ValueError(f"{name} has {len(seq)} entries, expected {n}")
        for name, seq in named:
            for i, t in enumerate(seq):
                if isinstance(t, QuantizedTensor):
                    if t.numel() != named[0][1][i].numel():
                        raise ValueError(f"{name}[{i}] has {t.numel()} elements, expected "
                                         f"{named[0][1][i].numel()}")
                    continue
                if not isinstance(t, Tensor):
                    raise TypeError(f"{name}[{i}] must be a Tensor, got {type(t).__name__}")
                if ref is None:
                    ref = t
                if t.device != ref.device or t.dtype != ref.dtype:
                    raise ValueError(
                        f"a bucket holds tensors of one device and dtype: {name}[{i}] is "
                        f"{t.dtype} on {t.device}, expected {ref.dtype} on {ref.device}"
                    )
                if t.shape != named[0][1][i].shape:
                    raise ValueError(f"{name}[{i}] has shape {tuple(t.shape)}, expected "
                                     f"{tuple(named[0][1][i].shape)}")
        if ref is None:
            raise ValueError("empty bucket")
        for name, seq in named:
            for i, t in enumerate(seq):
                if isinstance(t, QuantizedTensor) and t.device != ref.device:
                    raise ValueError(f"{name}[{i}] holds codes on {t.device}, the bucket is on "
                                     f"{ref.device}")
        if not ref.dtype.is_floating_point:
            raise TypeError(f"the Triton backend needs floating tensors, got {ref.dtype}")
        for name, s, size in scalars:
            if not isinstance(s, Tensor):
                raise TypeError(f"{name} must be a device tensor, got {type(s).__name__}")
            if s.shape != (size,):
                raise ValueError(f"{name} must have shape ({size},), got {tuple(s.shape)}")
            if s.device != ref.device:
                raise ValueError(f"{name} is on {s.device}, the bucket on {ref.device}")
            if not s.dtype.is_floating_point:
                raise TypeError(f"{name} must be floating, got {s.dtype}")
            if not s.is_contiguous():
                raise ValueError(f"{name} must be contiguous")
        return ref.device, ref.dtype

    @staticmethod
    def _quant_mode(retain: Sequence[Any]) -> bool:
        """Compact kernels when any retain entry holds codes (exact entries in such a bucket,
        e.g. zeros for a parameter without a retain gradient, take the fallback)."""
        return any(isinstance(r, QuantizedTensor) for r in retain)

    @staticmethod
    def _split(
        arrays: Sequence[Sequence[Any]], retain_at: int | None = None, quant: bool = False
    ) -> tuple[list[int], list[int]]:
        """Indices handled by the kernels and by the fallback (zero-size ones: neither).

        A tensor goes to the fallback when one of its arrays is not contiguous or, with
        ``retain_at`` (the position of the retain array), when its retain entry is not of the
        bucket's storage kind.
        """
        kernel: list[int] = []
        fallback: list[int] = []
        for i, row in enumerate(zip(*arrays)):
            n = row[0].numel()
            if n == 0:
                continue
            flat = retain_at is None or isinstance(row[retain_at], QuantizedTensor) == quant
            for t in row:
                if isinstance(t, QuantizedTensor):
                    flat = flat and t.codes.is_contiguous() and t.absmax.is_contiguous()
                else:
                    flat = flat and _flat_ok(t)
            (kernel if flat else fallback).append(i)
        return kernel, fallback

    @staticmethod
    def _retain_columns(retain: Sequence[Any], idx: Sequence[int], quant: bool) -> list[list[Tensor]]:
        if quant:
            return [[retain[i].codes for i in idx], [retain[i].absmax for i in idx]]
        return [[retain[i] for i in idx]]

    def _table(self, tag: str, columns: list[list[Tensor]], numels: list[int], idx: list[int]) -> Tensor:
        return self._tables.get(tag, columns, numels, idx, self.chunk_size)

    @staticmethod
    def _dense(r: Any, acc: torch.dtype) -> Tensor:
        if isinstance(r, QuantizedTensor):
            return r.dequantize(torch.float32).to(acc)
        return r.to(acc)

    @staticmethod
    def _direction(r: Tensor, f: Tensor, weights: Tensor, sago: bool) -> Tensor:
        wr, wf = weights[0].to(r.dtype), weights[1].to(r.dtype)
        if sago:
            agree = ((r > 0) & (f > 0)) | ((r < 0) & (f < 0))
            return torch.where(agree, wr * r, -(wf * f))
        return wr * r - wf * f

    # ------------------------------------------------------------------ interface
    def store_retain(self, grads: Sequence[Tensor], storage: str = "exact") -> list:
        """``"exact"``: the tensors themselves; ``"int8"``: blockwise codes made by one
        quantize launch (bit-identical to :func:`fastngd.compact.quantize_blockwise`)."""
        if storage == "exact":
            return list(grads)
        if storage != "int8":
            raise ValueError(f"unknown retain storage {storage!r}; valid: 'exact', 'int8'")
        if not grads:
            return []
        device, _ = self._check_bucket([("grads", grads)])
        self.check_device(device)
        kernel, _ = self._split([grads])
        in_kernel = set(kernel)
        out: list[QuantizedTensor] = []
        for i, g in enumerate(grads):
            if i in in_kernel:
                n = g.numel()
                out.append(QuantizedTensor(
                    torch.empty(n, dtype=torch.uint8, device=device),
                    torch.empty(num_blocks(n), dtype=torch.float32, device=device),
                    g.shape, g.dtype,
                ))
            else:
                out.append(quantize_blockwise(g))
        if kernel:
            cols = [[grads[i] for i in kernel], [out[i].codes for i in kernel],
                    [out[i].absmax for i in kernel]]
            table = self._table("quant", cols, [grads[i].numel() for i in kernel], kernel)
            self._k_quant.quantize(table, grads[kernel[0]], code_midpoints(device), self.chunk_size,
                                   self.block_size)
        return out

    def gram(self, retain: Sequence[Any], forget: Sequence[Tensor]) -> Tensor:
        if not forget:
            raise ValueError("gram() needs at least one tensor")
        device, dtype = self._check_bucket([("forget", forget), ("retain", retain)])
        self.check_device(device)
        quant = self._quant_mode(retain)
        acc = accumulation_dtype(dtype)
        kernel, fallback = self._split([forget, retain], 1, quant)
        if kernel:
            cols = self._retain_columns(retain, kernel, quant) + [[forget[i] for i in kernel]]
            table = self._table("gram_q" if quant else "gram", cols,
                                [forget[i].numel() for i in kernel], kernel)
            out = self._k_gram.gram(table, forget[kernel[0]], self.chunk_size, self.block_size,
                                    quant=quant, code=code_table(device) if quant else None)
        else:
            out = torch.zeros(3, dtype=acc, device=device)
        for i in fallback:
            r = self._dense(retain[i], acc).reshape(-1)
            f = forget[i].to(acc).reshape(-1)
            out = out + torch.stack([torch.dot(r, r), torch.dot(f, f), torch.dot(r, f)])
        return out

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
        device, dtype = self._check_bucket(
            [("params", params), ("retain", retain), ("forget", forget)],
            [("lr", lr, len(params)), ("weights", weights, 2)],
        )
        self.check_device(device)
        quant = self._quant_mode(retain)
        kernel, fallback = self._split([params, retain, forget], 1, quant)
        if kernel:
            cols = ([[params[i] for i in kernel]] + self._retain_columns(retain, kernel, quant)
                    + [[forget[i] for i in kernel]])
            table = self._table("update_q" if quant else "update", cols,
                                [params[i].numel() for i in kernel], kernel)
            self._k_update.update(table, lr, weights, params[kernel[0]], self.chunk_size,
                                  self.block_size, sago=sago, quant=quant,
                                  code=code_table(device) if quant else None)
        acc = accumulation_dtype(dtype)
        for i in fallback:
            p = params[i]
            eta = lr[i].to(acc)
            d = self._direction(self._dense(retain[i], acc), forget[i].to(acc), weights, sago)
            new = (p.to(acc) - eta * d).to(dtype)
            p.copy_(torch.where(eta != 0, new, p))

    def direction_and_backup(
        self,
        params: Sequence[Tensor],
        retain: Sequence[Any],
        forget: Sequence[Tensor],
        weights: Tensor,
        sago: bool = False,
    ) -> tuple[list[Tensor], list[Tensor]]:
        if not params:
            return [], []
        device, dtype = self._check_bucket(
            [("params", params), ("retain", retain), ("forget", forget)], [("weights", weights, 2)]
        )
        self.check_device(device)
        quant = self._quant_mode(retain)
        acc = accumulation_dtype(dtype)
        if quant:
            backups = [torch.empty_like(p, memory_format=torch.contiguous_format) for p in params]
            directions = list(forget)
        else:
            backups, directions = list(forget), list(retain)
        kernel, fallback = self._split([params, retain, forget], 1, quant)
        if kernel:
            cols = [[params[i] for i in kernel]] + self._retain_columns(retain, kernel, quant)
            cols.append([forget[i] for i in kernel])
            if quant:
                cols.append([backups[i] for i in kernel])
            table = self._table("dirb_q" if quant else "dirb", cols,
                                [params[i].numel() for i in kernel], kernel)
            self._k_gen.direction_and_backup(table, weights, params[kernel[0]], self.chunk_size,
                                             self.block_size, sago=sago, quant=quant,
                                             code=code_table(device) if quant else None)
        for i in fallback:
            d = self._direction(self._dense(retain[i], acc), forget[i].to(acc), weights, sago)
            directions[i].copy_(d)
            backups[i].copy_(params[i])
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
        device, dtype = self._check_bucket(
            [("params", params), ("backup", backup), ("direction", direction)],
            [("scale", scale, len(params))],
        )
        self.check_device(device)
        kernel, fallback = self._split([params, backup, direction])
        if kernel:
            cols = [[params[i] for i in kernel], [backup[i] for i in kernel],
                    [direction[i] for i in kernel]]
            table = self._table("perturb", cols, [params[i].numel() for i in kernel], kernel)
            self._k_gen.perturb(table, scale, params[kernel[0]], self.chunk_size, self.block_size)
        acc = accumulation_dtype(dtype)
        for i in fallback:
            s = scale[i].to(acc)
            moved = (backup[i].to(acc) + s * direction[i].to(acc)).to(dtype)
            params[i].copy_(torch.where(s == 0, backup[i], moved))

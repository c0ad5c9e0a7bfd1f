"""The Triton backend: fused multi-tensor kernels over cached pointer tables.

Every operation on a bucket (tensors of one device and dtype) is a constant number of kernel
launches, whatever the number of tensors: ``gram`` 2 (per-chunk float64 partials, then a
fixed-order sum over the bucket or per tensor), ``step`` 2 and ``advance_and_backup`` 2 (the
fused pass, then the fixed-order sum of the products ``[Σ r·u, Σ f·u]``), ``perturb`` 1,
``store_retain("int8")`` 1. The kernels run over an int64 table of fixed-size chunks (see
:mod:`fastngd.kernels.pointer_table`), cached and rebuilt only when a data pointer or a
shape changes. Per-tensor scalars (``hyper``, ``weights``, ``scale``) are read from device
memory: no host synchronisation. See :mod:`fastngd.kernels.step` for the arithmetic and the
launch geometry, :mod:`fastngd.kernels.gram` for why the Gram is formed in float64.

Host cost. The kernels of a small bucket take well under a millisecond on an H100 (GPT-2
small in bfloat16: about 0.3 ms for a step), so the Python around them must stay cheaper.
Validation (dtypes, devices, shapes), the kernel/fallback split and the table lookup run
once per bucket *layout*; a call with a known layout only forms its signature (data pointer,
shape, contiguity and dtype of every entry, read with C-level ``map`` calls: measured
0.7 ms for the 5 lists × 148 tensors of a GPT-2 Adam step on a loaded 2-core development
machine, against 2.9 ms for a full validation) and launches the kernels. Fresh gradient
buffers usually reuse the addresses of the last step's (the caching allocator), so layouts
repeat.

Tensors the kernels cannot address as flat memory (non-contiguous ones, and exact retain
entries in a bucket of compact ones) go through a per-tensor PyTorch path with the same
arithmetic (:mod:`fastngd.kernels.fallback`), still without host synchronisation;
zero-size tensors are skipped.

On CPU tensors the kernels run in Triton's interpreter, which must be selected before Triton
is imported: set ``TRITON_INTERPRET=1`` in the environment (or use ``backend="torch"``).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from operator import attrgetter
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

from .base import (
    BASE_KINDS,
    HYPER_COLUMNS,
    Backend,
    accumulation_dtype,
    scalar_dtype,
    state_names,
)
from .triton_version import MIN_TRITON, triton_version_supported

__all__ = ["TritonBackend", "require_triton"]

_NO_TRITON = (
    "backend='triton' needs the 'triton' package, which could not be imported ({err}); "
    "install it (pip install triton) or use backend='torch'"
)
_OLD_TRITON = (
    "backend='triton' needs triton {need} or newer, found {found}; upgrade it "
    "(pip install -U 'triton>={need}') or use backend='torch'"
)
_CPU_NEEDS_INTERPRETER = (
    "backend='triton' got CPU tensors but Triton's interpreter is off: set the environment "
    "variable TRITON_INTERPRET=1 before triton (and fastngd.kernels) is imported, e.g. "
    "`TRITON_INTERPRET=1 python train.py`, or use backend='torch' for CPU tensors"
)
_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def require_triton() -> Any:
    """Import and return the ``triton`` module, or raise an ImportError naming the fix (also
    when its version is older than :data:`~fastngd.backends.triton_version.MIN_TRITON`)."""
    try:
        import triton
    except Exception as err:  # ImportError, or a broken installation
        raise ImportError(_NO_TRITON.format(err=err)) from err
    found = getattr(triton, "__version__", "0")
    if not triton_version_supported(found):
        raise ImportError(_OLD_TRITON.format(need=".".join(map(str, MIN_TRITON)), found=found))
    return triton


def _is_pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


_DTYPE = attrgetter("dtype")


def _signature(seq: Sequence[Any]) -> Hashable:
    """What validation and planning depend on, per entry: data pointer, shape, contiguity,
    dtype (compact codes: both pointers, the shape, the dtype). The device is implied by the
    pointer (unified virtual addressing). Formed with C-level ``map`` calls: a fraction of a
    microsecond per tensor."""
    try:
        return (tuple(map(Tensor.data_ptr, seq)), tuple(map(Tensor.size, seq)),
                tuple(map(Tensor.is_contiguous, seq)), tuple(map(_DTYPE, seq)))
    except TypeError:  # compact codes, or an entry that validation will refuse
        return tuple(
            (t.codes.data_ptr(), t.absmax.data_ptr(), t.shape, t.dtype, _flat(t))
            if isinstance(t, QuantizedTensor) else
            (t.data_ptr(), t.shape, t.is_contiguous(), t.dtype) if isinstance(t, Tensor) else
            (type(t).__name__, id(t))
            for t in seq
        )


@dataclass(frozen=True)
class _Plan:
    """A validated bucket: device, dtype, the tensors of the kernels and of the fallback,
    whether the kernels read compact codes, and the kernels' pointer table (``None`` when no
    tensor goes to the kernels)."""

    device: torch.device
    dtype: torch.dtype
    kernel: list[int]
    fallback: list[int]
    quant: bool
    table: Any


def _flat(t: Any) -> bool:
    """Whether the kernels can address ``t`` (a tensor or compact codes) as flat memory."""
    if isinstance(t, QuantizedTensor):
        return t.codes.is_contiguous() and t.absmax.is_contiguous()
    return t.is_contiguous()


def _check_tensors(name: str, seq: Sequence[Any], like: Sequence[Tensor], dtype: torch.dtype,
                   device: torch.device, codes_ok: bool = False) -> None:
    """Every ``seq[i]`` is a tensor of ``dtype`` on ``device`` shaped like ``like[i]`` (or,
    with ``codes_ok``, compact codes of as many elements, on ``device``)."""
    if len(seq) != len(like):
        raise ValueError(f"{name} has {len(seq)} entries, expected {len(like)}")
    for i, (t, ref) in enumerate(zip(seq, like)):
        if codes_ok and isinstance(t, QuantizedTensor):
            if t.numel() != ref.numel():
                raise ValueError(f"{name}[{i}] has {t.numel()} elements, expected {ref.numel()}")
            if t.device != device:
                raise ValueError(f"{name}[{i}] holds codes on {t.device}, the bucket is on {device}")
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}[{i}] must be a Tensor, got {type(t).__name__}")
        if t.device != device or t.dtype != dtype:
            raise ValueError(
                f"a bucket holds tensors of one device and dtype: {name}[{i}] is {t.dtype} on "
                f"{t.device}, expected {dtype} on {device}"
            )
        if t.shape != ref.shape:
            raise ValueError(f"{name}[{i}] has shape {tuple(t.shape)}, expected {tuple(ref.shape)}")


def _check_scalars(name: str, s: Any, shape: tuple[int, ...], device: torch.device) -> None:
    """``s`` is a contiguous ``shape`` tensor of :func:`scalar_dtype` on ``device``."""
    if not isinstance(s, Tensor):
        raise TypeError(f"{name} must be a device tensor, got {type(s).__name__}")
    if tuple(s.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(s.shape)}")
    if s.device != device:
        raise ValueError(f"{name} is on {s.device}, the bucket on {device}")
    want = scalar_dtype(device)
    if s.dtype != want:
        raise TypeError(f"{name} must be {want} (scalar_dtype), got {s.dtype}")
    if not s.is_contiguous():
        raise ValueError(f"{name} must be contiguous")


class TritonBackend(Backend):
    """Fused Triton implementation of :class:`~fastngd.backends.base.Backend`.

    ``chunk_size`` elements per program (a power of two ≥ 256); ``block_size`` elements per
    vector step inside a program for 4-byte element types (as many bytes for the others; a
    power of two ≥ 16 dividing ``chunk_size``; default 1024 on a GPU and, under the
    interpreter, whose cost is per operation rather than per element, one step per chunk);
    ``num_warps`` per program of the streaming kernels;
    ``table_cache_size`` pointer tables are kept (LRU). The defaults are chosen for an H100
    (see :mod:`fastngd.kernels.step`).
    """

    name = "triton"

    def __init__(
        self,
        chunk_size: int = 16384,
        block_size: int | None = None,
        num_warps: int = 8,
        table_cache_size: int = 64,
    ):
        require_triton()
        from fastngd.kernels import fallback, gen, gram, quant, step
        from fastngd.kernels._common import Geometry, is_interpreted
        from fastngd.kernels.pointer_table import PointerTableCache

        self._interpreted = is_interpreted(step._fused_kernel)
        if block_size is None:
            block_size = chunk_size if self._interpreted else min(1024, chunk_size)
        if not _is_pow2(block_size) or block_size < 16:
            raise ValueError(f"block_size must be a power of two ≥ 16, got {block_size}")
        if not _is_pow2(chunk_size) or chunk_size < 256 or chunk_size % block_size:
            raise ValueError(
                f"chunk_size must be a power of two ≥ 256 and a multiple of block_size "
                f"({block_size}), got {chunk_size}"
            )
        if not _is_pow2(num_warps) or num_warps > 32:
            raise ValueError(f"num_warps must be a power of two ≤ 32, got {num_warps}")
        self.chunk_size = chunk_size
        self.block_size = block_size
        self.geometry = Geometry(chunk_size, block_size, num_warps)
        self._k = {"gram": gram, "step": step, "gen": gen, "quant": quant, "fallback": fallback}
        self._tables = PointerTableCache(table_cache_size)
        self._plans: OrderedDict[Hashable, _Plan] = OrderedDict()
        self._plan_cache_size = table_cache_size

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

    def _bucket(self, name: str, first: Sequence[Any]) -> tuple[torch.device, torch.dtype]:
        """Device and dtype of a bucket from its first list (which must be non-empty
        tensors), checked to be a supported floating dtype on a device the kernels run on."""
        if not first:
            raise ValueError(f"{name} is empty: a bucket needs at least one tensor")
        ref = first[0]
        if not isinstance(ref, Tensor):
            raise TypeError(f"{name}[0] must be a Tensor, got {type(ref).__name__}")
        if ref.dtype not in _DTYPES:
            raise TypeError(f"the Triton backend handles {', '.join(map(str, _DTYPES))} tensors, "
                            f"got {ref.dtype}")
        self.check_device(ref.device)
        return ref.device, ref.dtype

    def _plan(self, key: Hashable, build: Callable[[], _Plan]) -> _Plan:
        """The plan of a bucket whose :func:`_signature` is in ``key``: validation, the
        kernel/fallback split and the table lookup run once per distinct bucket layout (the
        host cost of a call with a known layout is the signature and the launches)."""
        plan = self._plans.get(key)
        if plan is None:
            plan = build()
            self._plans[key] = plan
            if len(self._plans) > self._plan_cache_size:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    def _make_plan(self, tag: str, arrays: dict[str, Sequence[Any]], retain: Sequence[Any] | None,
                   device: torch.device, dtype: torch.dtype) -> _Plan:
        """Split a validated bucket (``arrays``: column name → one entry per tensor, the
        first column's numels are the tensors') and look its kernel table up."""
        names = list(arrays)
        rows = list(zip(*arrays.values()))
        quant = retain is not None and any(isinstance(r, QuantizedTensor) for r in retain)
        kernel: list[int] = []
        fallback: list[int] = []
        for i, row in enumerate(rows):
            if row[0].numel() == 0:
                continue
            ok = all(_flat(t) for t in row)
            if retain is not None:
                ok = ok and isinstance(retain[i], QuantizedTensor) == quant
            (kernel if ok else fallback).append(i)
        table = None
        if kernel:
            cols: dict[str, list] = {}
            for name in names:
                if name == "R" and quant:
                    cols["R"] = [arrays["R"][i].codes for i in kernel]
                    cols["A"] = [arrays["R"][i].absmax for i in kernel]
                else:
                    cols[name] = [arrays[name][i] for i in kernel]
            table = self._tables.get(tag, cols, [rows[i][0].numel() for i in kernel], kernel,
                                     self.chunk_size)
        return _Plan(device, dtype, kernel, fallback, quant, table)

    def _gram_plan(self, retain: Sequence[Any], forget: Sequence[Tensor]) -> _Plan:
        device, dtype = self._bucket("forget", forget)
        _check_tensors("forget", forget, forget, dtype, device)
        _check_tensors("retain", retain, forget, dtype, device, codes_ok=True)
        return self._make_plan("gram", {"F": forget, "R": retain}, retain, device, dtype)

    def _fused_plan(self, params, retain, forget, state, kind) -> _Plan:
        device, dtype = self._bucket("params", params)
        _check_tensors("params", params, params, dtype, device)
        _check_tensors("retain", retain, params, dtype, device, codes_ok=True)
        _check_tensors("forget", forget, params, dtype, device)
        names = state_names(kind)
        if len(state) != len(names):
            raise ValueError(f"base {kind!r} has {len(names)} state lists ({', '.join(names)}), "
                             f"got {len(state)}")
        for name, col in zip(names, state):
            _check_tensors(name, col, params, accumulation_dtype(dtype), device)
        arrays = {"P": params, "R": retain, "F": forget, **dict(zip(("S0", "S1"), state))}
        return self._make_plan("fused", arrays, retain, device, dtype)

    def _check_call(self, params, retain, forget, state, hyper, weights, kind, mode) -> _Plan:
        """Validate the arguments of :meth:`step` / :meth:`advance_and_backup` (the tensors
        once per layout, the scalars and names on every call) and return the plan."""
        from fastngd.rules.elementwise import MODES

        if kind not in BASE_KINDS:
            raise ValueError(f"unknown base {kind!r}; valid: {', '.join(BASE_KINDS)}")
        if mode not in MODES:
            raise ValueError(f"unknown combine mode {mode!r}; valid: {', '.join(MODES)}")
        key = ("fused", kind, len(state), _signature(params), _signature(retain),
               _signature(forget), *map(_signature, state))
        plan = self._plan(key, lambda: self._fused_plan(params, retain, forget, state, kind))
        n = len(params)
        _check_scalars("hyper", hyper, (n, len(HYPER_COLUMNS)), plan.device)
        _check_scalars("weights", weights, (n, 2), plan.device)
        return plan

    # ------------------------------------------------------------------ interface
    def store_retain(self, grads: Sequence[Tensor], storage: str = "exact") -> list:
        """``"exact"``: the tensors themselves; ``"int8"``: blockwise codes made by one
        quantize launch (bit-identical to :func:`fastngd.compact.quantize_blockwise`)."""
        if storage != "int8":
            return super().store_retain(grads, storage)
        if not grads:
            return []
        device, dtype = self._bucket("grads", grads)
        _check_tensors("grads", grads, grads, dtype, device)
        out: list[QuantizedTensor] = []
        kernel = [i for i, g in enumerate(grads) if g.numel() and g.is_contiguous()]
        in_kernel = set(kernel)
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
            cols = {"F": [grads[i] for i in kernel], "R": [out[i].codes for i in kernel],
                    "A": [out[i].absmax for i in kernel]}
            table = self._tables.get("quant", cols, [grads[i].numel() for i in kernel], kernel,
                                     self.chunk_size)
            self._k["quant"].quantize(table, dtype, code_midpoints(device), self.chunk_size,
                                      self.block_size, self.geometry.num_warps)
        return out

    def gram(
        self, retain: Sequence[Any], forget: Sequence[Tensor], per_tensor: bool = False
    ) -> Tensor:
        """See :meth:`Backend.gram`: float64 products and sums (right for every finite
        input of float32/bfloat16/float16 storage), two launches."""
        key = ("gram", _signature(retain), _signature(forget))
        plan = self._plan(key, lambda: self._gram_plan(retain, forget))
        n = len(forget)
        if plan.table is not None:
            out = self._k["gram"].gram(plan.table, plan.dtype, self.geometry, quant=plan.quant,
                                       code=code_table(plan.device) if plan.quant else None,
                                       per_tensor=n if per_tensor else 0)
        else:
            out = torch.zeros((n, 3) if per_tensor else 3, dtype=torch.float64,
                              device=plan.device)
        for i in plan.fallback:
            row = self._k["fallback"].gram_tensor(retain[i], forget[i])
            if per_tensor:
                out[i] = row
            else:
                out += row
        return out

    def _fused(self, plan: _Plan, params, retain, forget, state, hyper, weights, kind, mode,
               advance: bool, backups=None) -> Tensor:
        """The fused pass over the kernel tensors, the fallback over the others; returns the
        products."""
        table = plan.table
        if table is not None and advance and plan.quant:  # fresh backups: their own table
            cols = {"P": params, "R": retain, "F": forget, **dict(zip(("S0", "S1"), state)),
                    "X": backups}
            table = self._make_plan("fused", cols, retain, plan.device, plan.dtype).table
        if table is not None:
            products = self._k["step"].fused(
                table, hyper, weights, plan.dtype, kind, mode, self.geometry, advance=advance,
                quant=plan.quant, code=code_table(plan.device) if plan.quant else None)
        else:
            products = torch.zeros(2, dtype=torch.float64, device=plan.device)
        for i in plan.fallback:
            u_out = b_out = None
            if advance:
                u_out, b_out = (forget[i], backups[i]) if plan.quant else (retain[i], forget[i])
            products += self._k["fallback"].fused_tensor(
                params[i], retain[i], forget[i], [s[i] for s in state], hyper[i], weights[i],
                kind, mode, u_out=u_out, backup_out=b_out)
        return products

    def step(
        self,
        params: Sequence[Tensor],
        retain: Sequence[Any],
        forget: Sequence[Tensor],
        state: Sequence[Sequence[Tensor]],
        hyper: Tensor,
        weights: Tensor,
        kind: str,
        mode: str = "linear",
    ) -> Tensor:
        """See :meth:`Backend.step`: one fused launch and the products' second stage."""
        if not params:
            return torch.zeros(2, dtype=scalar_dtype(hyper.device), device=hyper.device)
        plan = self._check_call(params, retain, forget, state, hyper, weights, kind, mode)
        return self._fused(plan, params, retain, forget, state, hyper, weights, kind, mode, False)

    def advance_and_backup(
        self,
        params: Sequence[Tensor],
        retain: Sequence[Any],
        forget: Sequence[Tensor],
        state: Sequence[Sequence[Tensor]],
        hyper: Tensor,
        weights: Tensor,
        kind: str,
        mode: str = "linear",
    ) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """See :meth:`Backend.advance_and_backup`: one fused launch and the products'
        second stage. With compact storage, ``u`` goes to the forget buffer and
        the backups are fresh contiguous tensors."""
        if not params:
            return [], [], torch.zeros(2, dtype=scalar_dtype(hyper.device), device=hyper.device)
        plan = self._check_call(params, retain, forget, state, hyper, weights, kind, mode)
        compact = any(isinstance(r, QuantizedTensor) for r in retain)
        if compact:
            backups = [torch.empty_like(p, memory_format=torch.contiguous_format)
                       for p in params]
            updates = list(forget)
        else:
            backups, updates = list(forget), list(retain)
        products = self._fused(plan, params, retain, forget, state, hyper, weights, kind, mode,
                               True, backups)
        return updates, backups, products

    def _perturb_plan(self, params, backup, direction) -> _Plan:
        device, dtype = self._bucket("params", params)
        _check_tensors("params", params, params, dtype, device)
        _check_tensors("backup", backup, params, dtype, device)
        _check_tensors("direction", direction, params, dtype, device)
        return self._make_plan("perturb", {"P": params, "X": backup, "R": direction}, None,
                               device, dtype)

    def perturb(
        self,
        params: Sequence[Tensor],
        backup: Sequence[Tensor],
        direction: Sequence[Tensor],
        scale: Tensor,
    ) -> None:
        """See :meth:`Backend.perturb`: one launch."""
        if not params:
            return
        key = ("perturb", _signature(params), _signature(backup), _signature(direction))
        plan = self._plan(key, lambda: self._perturb_plan(params, backup, direction))
        _check_scalars("scale", scale, (len(params),), plan.device)
        if plan.table is not None:
            self._k["gen"].perturb(plan.table, scale, plan.dtype, self.geometry)
        for i in plan.fallback:
            self._k["fallback"].perturb_tensor(params[i], backup[i], direction[i], scale[i])

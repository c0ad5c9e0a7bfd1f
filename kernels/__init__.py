"""Triton kernels of the fused multi-tensor backend (installed as ``fastngd.kernels``).

Kernel families, one module each: :mod:`.gram` (fused Gram reduction), :mod:`.step` (the
fused pass: direction, base optimizer update and products, for ``step`` and
``advance_and_backup``), :mod:`.gen` (GeN perturbation from the backup), :mod:`.quant`
(blockwise 8-bit quantisation), :mod:`.reduce` (the fixed-order second stage of the
reductions). :mod:`.pointer_table` builds the cached int64 chunk tables they run over,
:mod:`._common` holds the shared device helpers (row decoding, direction, rounding),
:mod:`.launch` counts launches, :mod:`.fallback` is the per-tensor PyTorch path with the
kernels' arithmetic, :mod:`.naive` is the float64 reference. Importing this package does not
import Triton; the kernel modules do (set ``TRITON_INTERPRET=1`` before that import to run
them on CPU tensors).
"""
from .launch import launch_count, reset_launch_count
from .pointer_table import CacheInfo, ChunkTable, PointerTableCache, build_table

__all__ = [
    "CacheInfo",
    "ChunkTable",
    "PointerTableCache",
    "build_table",
    "launch_count",
    "reset_launch_count",
]

"""Triton kernels of the fused multi-tensor backend (installed as ``fastngd.kernels``).

Kernel families, one module each: :mod:`.gram` (fused Gram reduction), :mod:`.update`
(fused update, linear and SAGO), :mod:`.gen` (GeN direction/backup and perturb),
:mod:`.quant` (blockwise 8-bit quantisation). :mod:`.pointer_table` builds the cached int64
chunk tables they run over, :mod:`.launch` counts launches, :mod:`.naive` is the float64
reference. Importing this package does not import Triton; the kernel modules do (set
``TRITON_INTERPRET=1`` before that import to run them on CPU tensors).
"""
from .launch import launch_count, reset_launch_count
from .pointer_table import CacheInfo, PointerTableCache, build_table

__all__ = [
    "CacheInfo",
    "PointerTableCache",
    "build_table",
    "launch_count",
    "reset_launch_count",
]

"""Backends: the code that touches parameter-sized memory (see :class:`Backend`)."""
from __future__ import annotations

import torch

from .base import BASE_KINDS, HYPER_COLUMNS, Backend, accumulation_dtype, scalar_dtype, state_names
from .torch_backend import TorchBackend

__all__ = [
    "BACKENDS",
    "BASE_KINDS",
    "HYPER_COLUMNS",
    "Backend",
    "TorchBackend",
    "accumulation_dtype",
    "get_backend",
    "scalar_dtype",
    "state_names",
]

BACKENDS = ("auto", "torch", "triton")


def _triton_usable_on(device: torch.device) -> bool:
    if device.type != "cuda":
        return False
    from .triton import require_triton

    try:
        require_triton()
    except ImportError:
        return False
    return True


def get_backend(name: str, device: torch.device) -> Backend:
    """Resolve a backend name for tensors on ``device``.

    ``"auto"`` picks ``"triton"`` for CUDA tensors when a supported triton (3.2 or newer)
    imports, else ``"torch"``.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    if name == "auto":
        name = "triton" if _triton_usable_on(device) else "torch"
    if name == "torch":
        return TorchBackend()
    from .triton import TritonBackend

    backend = TritonBackend()
    backend.check_device(device)
    return backend

"""Launch counting: every kernel launch site in :mod:`fastngd.kernels` goes through
:func:`launch`, so a test can assert that the number of launches per optimizer step does
not grow with the number of tensors."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["launch", "launch_count", "reset_launch_count"]

_LAUNCHES: int = 0


def _execute(kernel: Any, grid: tuple[int, ...], args: tuple, kwargs: dict) -> None:
    """Run one launch (the single place where a kernel is started)."""
    kernel[grid](*args, **kwargs)


def launch(kernel: Any, grid: Sequence[int], *args: Any, **kwargs: Any) -> None:
    """Launch ``kernel[grid](*args, **kwargs)`` and count it."""
    global _LAUNCHES
    _LAUNCHES += 1
    _execute(kernel, tuple(grid), args, kwargs)


def launch_count() -> int:
    """Total number of kernel launches since import (or the last reset)."""
    return _LAUNCHES


def reset_launch_count() -> None:
    """Set the launch counter back to zero."""
    global _LAUNCHES
    _LAUNCHES = 0

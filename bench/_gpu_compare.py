"""Comparisons of ``bench/gpu_check.py``: tolerances, elementwise bounds, bitwise
equality and launch counting."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["bitwise", "compare", "count_launches", "tolerance"]

#: ``(rtol, atol)`` of a result stored in each dtype, against a float64 reference.
_TOL = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (1.6e-2, 1.6e-2),
        torch.float16: (2e-3, 2e-3), torch.float64: (1e-12, 1e-12)}
#: tolerances of the whole optimizer (7 steps, errors compound) against the torch backend.
_OPT_TOL = {torch.float32: (1e-4, 1e-5), torch.bfloat16: (2e-2, 2e-2)}
def tolerance(dtype: torch.dtype, optimizer: bool = False) -> tuple[float, float]:
    """``(rtol, atol)`` for results stored in ``dtype`` (looser for 7 optimizer steps)."""
    table = _OPT_TOL if optimizer else _TOL
    return table.get(dtype, _TOL[torch.float32])


def compare(actual: Sequence[Tensor], expected: Sequence[Tensor], rtol: float,
            atol: float) -> dict[str, Any]:
    """``ok`` iff every element satisfies ``|a − e| ≤ atol + rtol·|e|`` or equals it (NaN
    only against NaN, an infinity only against itself); also the largest absolute difference
    and the largest ``|a − e| / bound``."""
    if len(actual) != len(expected):
        raise ValueError(f"{len(actual)} tensors against {len(expected)}")
    ok, max_abs, worst = True, 0.0, 0.0
    for a, e in zip(actual, expected):
        if a.shape != e.shape:
            raise ValueError(f"shape {tuple(a.shape)} against {tuple(e.shape)}")
        if a.numel() == 0:
            continue
        a64, e64 = a.detach().double(), e.detach().to(a.device).double()
        same = (a64 == e64) | (torch.isnan(a64) & torch.isnan(e64))  # infinities, NaNs
        diff = torch.where(same, torch.zeros_like(a64), (a64 - e64).abs())
        bound = torch.where(same, torch.ones_like(a64), atol + rtol * e64.abs())
        # NaN differences count as bad, so does an infinity against anything else
        bad = ~(diff <= bound) | (~same & (torch.isinf(a64) | torch.isinf(e64)))
        ok = ok and not bool(bad.any())
        finite = torch.where(torch.isfinite(diff), diff, torch.full_like(diff, float("inf")))
        max_abs = max(max_abs, float(finite.max()))
        worst = max(worst, float((finite / bound).max()))
    return {"ok": ok, "max_abs": max_abs, "worst_ratio": worst}


def bitwise(a: Sequence[Tensor], b: Sequence[Tensor]) -> bool:
    """Every pair of tensors holds the same bits (and shapes)."""
    return all(torch.equal(x, y) for x, y in zip(a, b))


def count_launches(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()`` and the number of Triton kernel launches it made."""
    from fastngd.kernels import launch_count

    before = launch_count()
    out = fn()
    return out, launch_count() - before

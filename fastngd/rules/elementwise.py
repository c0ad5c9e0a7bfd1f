"""The direction ``d`` of every combine mode, element by element.

This is the one PyTorch implementation of the per-coordinate math, shared by the torch
backend, the Triton backend's fallback path, the float64 references and the tests (the Triton
kernels carry the same formulas in ``fastngd.kernels._common.direction``).

With ``r = g_R`` and ``f = g_F`` (the gradient of the forget loss, which the step
*increases*), the conflict mask is ``m_i = [sign(r_i)·sign(f_i) > 0]``: at such a
coordinate, descending L_R and ascending L_F pull in opposite directions. It is decided from
the signs, so no product can underflow to a false "no conflict"; a zero coordinate is never
a conflict. The modes, for weights ``(w_R, w_F)``:

* ``"linear"``: ``d = w_R·r − w_F·f``;
* ``"sago"``: ``d_i = w_R·r_i`` where ``m_i``, else ``−w_F·f_i`` (conflicting coordinates
  follow the retain gradient only, all others the forget direction only);
* ``"sago_prefer_retain"``: ``d_i = w_R·r_i`` where ``m_i``, else ``w_R·r_i − w_F·f_i``.

Both masked modes give ``d_i·r_i ≥ 0`` at every conflicting coordinate.
"""
from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

__all__ = ["MODES", "combine", "conflict_mask"]

#: the combine modes a backend implements.
MODES = ("linear", "sago", "sago_prefer_retain")

Weight = Union[float, Tensor]


def conflict_mask(r: Tensor, f: Tensor) -> Tensor:
    """``[sign(r)·sign(f) > 0]`` elementwise (a boolean tensor)."""
    return torch.sign(r) * torch.sign(f) > 0


def combine(r: Tensor, f: Tensor, w_r: Weight, w_f: Weight, mode: str = "linear") -> Tensor:
    """The direction ``d`` for ``mode`` (see the module docstring), in the dtype of ``r``.

    ``w_r`` and ``w_f`` are Python floats or tensors broadcastable to ``r``.
    """
    if mode == "linear":
        return r * w_r - f * w_f
    if mode == "sago":
        return torch.where(conflict_mask(r, f), r * w_r, f * (-w_f))
    if mode == "sago_prefer_retain":
        keep = r * w_r
        return torch.where(conflict_mask(r, f), keep, keep - f * w_f)
    raise ValueError(f"unknown combine mode {mode!r}; valid: {', '.join(MODES)}")

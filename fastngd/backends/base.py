"""The backend interface: the only code that touches parameter-sized memory.

A backend works on *buckets*: lists of tensors that share one device and one dtype. Every
operation takes the per-tensor scalars it needs as **device tensors**, so that no operation
needs a host synchronisation (CUDA-graph friendly). Notation, per tensor i of the bucket:

* ``p_i`` the parameter, ``r_i`` the retain gradient g_R (a tensor, or compact codes),
  ``f_i`` the forget gradient g_F (the gradient of the loss the step *increases*);
* ``weights`` the combine weights, shape ``(n, 2)``: row i is ``(w_R, w_F)`` for tensor i
  (global rules repeat one row; per-tensor rules such as SAGO's per-tensor PCGrad differ);
* ``mode`` one of :data:`fastngd.rules.elementwise.MODES`; the direction is
  ``d_i = combine(r_i, f_i, w_R, w_F, mode)`` (:func:`fastngd.rules.elementwise.combine`):
  ``"linear"`` gives ``d = w_R·r − w_F·f``;
* ``kind`` the base update, one of :data:`BASE_KINDS`, with per-tensor hyper-parameters
  ``hyper`` (shape ``(n, len(HYPER_COLUMNS))``, see :data:`HYPER_COLUMNS`) and per-tensor
  state ``state`` (see :func:`state_names`);
* ``u_i`` the *update direction* of the base (the step is ``p_i ← p_i − lr_i·u_i``).

Base updates (torch's semantics with ``d`` in place of the gradient; ``wd`` the weight
decay, ``β₁``, ``β₂``, ``ε`` and the bias corrections ``bc₁ = 1 − β₁ᵗ``,
``bc₂ = 1 − β₂ᵗ`` with ``t`` the number of applied steps including this one):

* ``"sgd"``:      ``g = d + wd·p``;  ``u = g``  (``torch.optim.SGD``);
* ``"momentum"``: ``g = d + wd·p``;  ``b ← β₁·b + g``;  ``u = b``  (``torch.optim.SGD`` with
  ``momentum=β₁, dampening=0, nesterov=False``; ``b`` starts at zero, so the first step
  gives ``b = g`` as torch's does);
* ``"adam"``:     ``g = d + wd·p``;  ``m ← β₁·m + (1 − β₁)·g``;  ``v ← β₂·v + (1 − β₂)·g²``;
  ``u = (m / bc₁) / (√v / √bc₂ + ε)``  (``torch.optim.Adam``, L2 decay);
* ``"adamw"``:    ``g = d``;  ``m``, ``v`` as for adam;
  ``u = (m / bc₁) / (√v / √bc₂ + ε) + wd·p``  (``torch.optim.AdamW``, decoupled decay:
  ``p − lr·u = p·(1 − lr·wd) − lr·m̂/(√v̂ + ε)``).

A row of ``hyper`` whose ``lr`` is exactly zero marks a *skipped* tensor: its parameter and
its state are neither read nor written by :meth:`Backend.step` (this is how a skipped step
leaves NaN gradients unread and the base's state untouched). A caller that wants torch's
``lr = 0`` instead (θ kept, the state advanced, as in the first step of a warm-up schedule)
passes the smallest positive float64 (``math.ulp(0.0)``), which rounds to a zero step in the
update's arithmetic.

Precision: all arithmetic in the accumulation dtype (float32, or float64 for float64
tensors) and rounded once on store; state tensors are float32 (float64 for float64
parameters), so bf16/fp16 parameters keep float32 moments. Scalars returned (the Gram
entries, the products ``g·u``) are in :func:`scalar_dtype` (float64; float32 on MPS) and
must be right for **every finite input of the storage dtype**: no intermediate square or
product may overflow or underflow (e.g. products formed in float64, or float32 partials with
a float64 recomputation of any chunk whose partial is not finite or too small to be exact).
For float64 tensors this can only hold while the sums themselves are representable in
float64 (norms between about 1e-154 and 1e154). Likewise a ``weights`` entry outside the
accumulation dtype's normal range (e.g. ``1/‖g‖`` of a float32 gradient of norm 1e-40, or
1e-41 next to a gradient of 1e30) must not be rounded to a float32 subnormal or to inf before
it multiplies: apply it as two normal factors (e.g. a power of two, then the rest).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "BASE_KINDS",
    "HYPER_COLUMNS",
    "Backend",
    "accumulation_dtype",
    "scalar_dtype",
    "state_names",
]

#: the base updates a backend implements (see the module docstring).
BASE_KINDS = ("sgd", "momentum", "adam", "adamw")

#: columns of the per-tensor ``hyper`` table, in order. ``lr`` is the applied learning rate
#: (0 = skipped tensor); ``beta1`` is the momentum ``μ`` for ``"momentum"``; ``bc1`` and
#: ``bc2`` are the bias corrections ``1 − β₁ᵗ`` and ``1 − β₂ᵗ`` (1 when not used). Columns a
#: base does not use are ignored (conventionally 0, or 1 for ``bc1``/``bc2``).
HYPER_COLUMNS = ("lr", "weight_decay", "beta1", "beta2", "eps", "bc1", "bc2")

_STATE_NAMES: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "momentum": ("momentum_buffer",),
    "adam": ("exp_avg", "exp_avg_sq"),
    "adamw": ("exp_avg", "exp_avg_sq"),
}


def state_names(kind: str) -> tuple[str, ...]:
    """Names of the per-tensor state of base ``kind``, in the order ``state`` lists them
    (the names ``torch.optim`` uses for the same buffers)."""
    if kind not in _STATE_NAMES:
        raise ValueError(f"unknown base {kind!r}; valid: {', '.join(BASE_KINDS)}")
    return _STATE_NAMES[kind]


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64 tensors, float32 for every other floating dtype (the dtype of the
    arithmetic and of the base's state)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def scalar_dtype(device: torch.device) -> torch.dtype:
    """dtype of the scalars exchanged with a backend (``hyper``, ``weights``, Gram entries,
    products): float64, except float32 on MPS (which has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


class Backend(ABC):
    """Fused multi-tensor primitives used by :class:`fastngd.NGDiffOptimizer`.

    ``state`` arguments are lists of per-tensor lists: ``state[k][i]`` is the k-th state
    tensor (:func:`state_names`) of tensor i, contiguous, of the parameter's shape, in
    :func:`accumulation_dtype`. ``hyper`` and ``weights`` are contiguous tensors in
    :func:`scalar_dtype` on the bucket's device.
    """

    #: short name used in ``NGDiffOptimizer(backend=...)``.
    name: str = "abstract"

    def store_retain(self, grads: Sequence[Tensor], storage: str = "exact") -> list:
        """Keep the retain gradients until the update.

        ``"exact"`` keeps the tensors themselves (no copy); ``"int8"`` stores blockwise 8-bit
        codes (:mod:`fastngd.compact`). Entries returned here are what ``retain`` means below.
        """
        if storage == "exact":
            return list(grads)
        if storage == "int8":
            from fastngd.compact import quantize_blockwise

            return [quantize_blockwise(g) for g in grads]
        raise ValueError(f"unknown retain storage {storage!r}; valid: 'exact', 'int8'")

    @abstractmethod
    def gram(
        self, retain: Sequence[Any], forget: Sequence[Tensor], per_tensor: bool = False
    ) -> Tensor:
        """``[rr, ff, rf] = [Σ‖r_i‖², Σ‖f_i‖², Σ r_i·f_i]`` over the bucket, shape ``(3,)``;
        with ``per_tensor``, one row ``[‖r_i‖², ‖f_i‖², r_i·f_i]`` per tensor, shape
        ``(n, 3)``. In :func:`scalar_dtype`, right for every finite input (see the module
        docstring), deterministic (a fixed order of summation)."""

    @abstractmethod
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
        """The fused update, in place: ``d_i`` from ``(r_i, f_i)``, the base's state advanced
        once with it, ``p_i ← p_i − lr_i·u_i``; each element of ``p``, ``r``, ``f`` and the
        state is read once and ``p`` and the state written once. Rows with ``lr_i == 0`` are
        untouched.

        Returns ``[Σ r_i·u_i, Σ f_i·u_i]`` over the updated tensors (shape ``(2,)``,
        :func:`scalar_dtype`), formed in the same pass (no extra read of the buffers): the
        retain and forget sides of Lemma 4 for the step actually taken (``g_R·u ≥ 0`` means
        the step descends L_R to first order, ``g_F·u ≤ 0`` that it ascends L_F).
        """

    @abstractmethod
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
        """For GeN along the real update: advance the base's state once with ``d_i``, write
        ``u_i`` (rounded to the parameter dtype) and a bit-exact backup of ``p_i``; ``p_i``
        itself is not changed. Returns ``(update, backup, products)``, ``products`` as in
        :meth:`step`.

        Exact storage allocates nothing: ``r_i ← u_i`` and ``f_i ← p_i``, and the two lists
        returned are ``retain`` and ``forget`` themselves. Compact storage (a retain entry is
        quantized codes) writes ``u`` over the forget buffer and returns fresh backups.
        Rows with ``lr_i == 0`` (a skipped step) leave the state untouched and get
        ``u_i = 0`` (the backup is still written), so that :meth:`perturb` restores them.
        Only the ``lr`` column's zero test is used here; the step size is applied later by
        :meth:`perturb` (``p = backup − η·u``).
        """

    @abstractmethod
    def perturb(
        self,
        params: Sequence[Tensor],
        backup: Sequence[Tensor],
        direction: Sequence[Tensor],
        scale: Tensor,
    ) -> None:
        """In place: ``p_i ← backup_i + scale_i · direction_i`` (``scale`` shape ``(n,)``,
        :func:`scalar_dtype`). ``scale_i == 0`` copies the backup back bit-exactly."""

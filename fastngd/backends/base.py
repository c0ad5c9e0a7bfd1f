"""The backend interface: the only code that touches parameter-sized memory.

A backend works on *buckets*: lists of tensors that share one device and one dtype. Every
operation takes the per-tensor scalars it needs as **device tensors**, so that no operation
needs a host synchronisation (CUDA-graph friendly). Notation, per tensor i of the bucket:

* ``p_i`` the parameter, ``r_i`` the retain gradient g_R, ``f_i`` the forget gradient g_F;
* ``w = (w_R, w_F)`` the combine weights (shape ``(2,)``);
* the direction ``d_i = w_R·r_i − w_F·f_i`` (``linear`` mode) or, in ``sago`` mode,
  ``d_i = w_R·r_i ⊙ m_i − w_F·f_i ⊙ (1 − m_i)`` with the conflict mask ``m_i = [r_i·f_i > 0]``
  taken elementwise (coordinates where descending L_R and ascending L_F disagree follow the
  retain gradient only);
* ``lr`` the per-tensor learning rates (shape ``(n,)``). A tensor whose ``lr`` is exactly
  zero is never written (this is how a skipped step leaves NaN gradients unread).

``lr``, ``weights`` and ``scale`` come in the bucket's accumulation dtype (float32, or float64
for a float64 bucket) on the bucket's device.

All arithmetic is done in float32 (float64 for float64 tensors) and rounded once on store.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

from torch import Tensor

__all__ = ["Backend", "accumulation_dtype"]


def accumulation_dtype(dtype):  # type: ignore[no-untyped-def]
    """float64 for float64 tensors, float32 for every other floating dtype."""
    import torch

    return torch.float64 if dtype == torch.float64 else torch.float32


class Backend(ABC):
    """Fused multi-tensor primitives used by :class:`fastngd.NGDiffOptimizer`."""

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
    def gram(self, retain: Sequence[Tensor], forget: Sequence[Tensor]) -> Tensor:
        """Return ``[rr, ff, rf] = [Σ‖r_i‖², Σ‖f_i‖², Σ r_i·f_i]`` over the bucket.

        Shape ``(3,)``, accumulated in :func:`accumulation_dtype`, on the bucket's device.
        """

    @abstractmethod
    def update(
        self,
        params: Sequence[Tensor],
        retain: Sequence[Tensor],
        forget: Sequence[Tensor],
        lr: Tensor,
        weights: Tensor,
        sago: bool = False,
    ) -> None:
        """In place: ``p_i ← p_i − lr_i · d_i`` (skipped where ``lr_i == 0``)."""

    @abstractmethod
    def direction_and_backup(
        self,
        params: Sequence[Tensor],
        retain: Sequence[Tensor],
        forget: Sequence[Tensor],
        weights: Tensor,
        sago: bool = False,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """For GeN: materialise the direction d and back θ up; return ``(direction, backup)``.

        Exact storage allocates nothing: ``r_i ← d_i`` (stored in the parameter dtype) and
        ``f_i ← p_i`` (a bit-exact copy), and the two lists returned are ``retain`` and
        ``forget`` themselves. Compact storage (a retain entry is a quantized code block)
        writes d over the forget buffer and returns fresh backup tensors.
        """

    @abstractmethod
    def perturb(
        self,
        params: Sequence[Tensor],
        backup: Sequence[Tensor],
        direction: Sequence[Tensor],
        scale: Tensor,
    ) -> None:
        """In place: ``p_i ← backup_i + scale_i · direction_i`` (``scale`` shape ``(n,)``).

        ``scale_i == 0`` copies the backup back bit-exactly.
        """

"""Base updates: how the combined direction ``d`` becomes the step (one module per base).

The optimizer's three layers: direction (:mod:`fastngd.rules`) → **base update** (this
package: ``u`` from ``d`` and the base's state, torch's semantics with ``d`` in place of the
gradient) → step size (:mod:`fastngd.step_sizes`: fixed η, or GeN fitted along ``u``).

========== =================================================== ==========================
base        update ``u`` (``θ ← θ − η·u``)                        state per parameter
========== =================================================== ==========================
``sgd``     ``d + wd·θ``                                          none
``momentum`` ``b ← μ·b + d + wd·θ``; ``u = b``                    ``momentum_buffer``
``adam``    ``m̂/(√v̂ + ε)`` of ``g = d + wd·θ``                    ``exp_avg``, ``exp_avg_sq``, ``step``
``adamw``   ``m̂/(√v̂ + ε) + wd·θ`` of ``g = d``                    ``exp_avg``, ``exp_avg_sq``, ``step``
========== =================================================== ==========================
"""
from __future__ import annotations

from ._base import GROUP_KEYS, BaseUpdate
from .adam import Adam
from .adamw import AdamW
from .momentum import Momentum
from .sgd import SGD

__all__ = ["BASES", "GROUP_KEYS", "SGD", "Adam", "AdamW", "BaseUpdate", "Momentum", "get_base"]

_REGISTRY: dict[str, type[BaseUpdate]] = {c.name: c for c in (SGD, Momentum, Adam, AdamW)}

#: names of the base updates, for ``NGDiffOptimizer(base=...)``.
BASES: tuple[str, ...] = tuple(_REGISTRY)


def get_base(name: str) -> BaseUpdate:
    """The base update called ``name`` (one of :data:`BASES`); ``ValueError`` otherwise."""
    if not isinstance(name, str) or name.lower() not in _REGISTRY:
        raise ValueError(f"unknown base {name!r}; valid bases: {', '.join(BASES)}")
    return _REGISTRY[name.lower()]()

"""Adapters to training frameworks.

* :class:`NGDiffTrainer` (``fastngd.integrations.hf_trainer``): a ``transformers.Trainer``
  that unlearns a forget dataset while keeping a retain dataset with
  :class:`fastngd.NGDiffOptimizer`. Needs ``transformers`` and ``accelerate``; imported on
  first access, so ``import fastngd.integrations`` does not need them.
"""
from __future__ import annotations

from typing import Any

__all__ = ["NGDiffTrainer"]


def __getattr__(name: str) -> Any:
    if name == "NGDiffTrainer":
        from .hf_trainer import NGDiffTrainer

        return NGDiffTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

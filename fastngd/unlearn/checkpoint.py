"""Whole-run checkpoints of an unlearning run, written atomically.

A checkpoint is one ``torch.save`` file holding everything a bit-identical continuation
needs: the model's ``state_dict``, the optimizer's ``state_dict`` (GeN learning-rate scale,
call counter and rule RNG included), the step counter, the data order of the current epoch,
the reference NLLs of NPO, the torch CPU (and CUDA) RNG states, the run's history and the
run's configuration. It is written to a temporary file in the same folder, flushed to disk,
then renamed over ``checkpoint.pt`` (``os.replace`` is atomic), so an interrupted write never
leaves a torn checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fastngd.atomic import atomic_write

__all__ = ["CHECKPOINT_NAME", "config_mismatch", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_NAME = "checkpoint.pt"
"""File name of the checkpoint inside a run's checkpoint folder."""


def save_checkpoint(directory: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``directory/checkpoint.pt`` atomically; returns the path."""
    return atomic_write(Path(directory) / CHECKPOINT_NAME,
                        lambda handle: torch.save(payload, handle), binary=True)


def load_checkpoint(directory: str | Path) -> dict[str, Any] | None:
    """The payload of ``directory/checkpoint.pt``, or None when there is none."""
    path = Path(directory) / CHECKPOINT_NAME
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def config_mismatch(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two run configurations (empty when equal)."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if a != b:
            out.append(f"{key}: checkpoint {a!r} vs now {b!r}")
    return out

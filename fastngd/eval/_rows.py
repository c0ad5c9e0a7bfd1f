"""Field access on benchmark rows with errors that name the split, row and field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["column", "list_column", "take"]


def take(
    split: str, rows: Sequence[Mapping[str, Any]], max_examples: int | None
) -> list[Mapping[str, Any]]:
    """The first ``max_examples`` rows of ``split`` (all when None); ``ValueError`` when empty."""
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be >= 1 or None, got {max_examples}")
    out = list(rows) if max_examples is None else list(rows[:max_examples])
    if not out:
        raise ValueError(f"split {split!r} is empty; nothing to evaluate")
    return out


def column(split: str, rows: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    """``[row[key] for row in rows]``; ``KeyError``/``TypeError`` naming split, row and field."""
    out: list[str] = []
    for i, row in enumerate(rows):
        if key not in row:
            raise KeyError(f"split {split!r} row {i} has no field {key!r} (fields: {sorted(row)})")
        value = row[key]
        if not isinstance(value, str):
            raise TypeError(
                f"split {split!r} row {i} field {key!r} must be a str, got {type(value).__name__}"
            )
        out.append(value)
    return out


def list_column(split: str, rows: Sequence[Mapping[str, Any]], key: str) -> list[list[str]]:
    """``[list(row[key]) for row in rows]`` for a field holding a non-empty list of strings."""
    out: list[list[str]] = []
    for i, row in enumerate(rows):
        if key not in row:
            raise KeyError(f"split {split!r} row {i} has no field {key!r} (fields: {sorted(row)})")
        value = row[key]
        if isinstance(value, str) or not isinstance(value, Sequence) or len(value) == 0:
            raise TypeError(
                f"split {split!r} row {i} field {key!r} must be a non-empty list of str"
            )
        if not all(isinstance(v, str) for v in value):
            raise TypeError(f"split {split!r} row {i} field {key!r} holds a non-string item")
        out.append(list(value))
    return out

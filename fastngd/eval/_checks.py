"""Input validation shared by the metric functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["check_nonempty", "check_same_length", "check_strings", "check_text_pairs"]


def check_nonempty(name: str, values: Sequence[Any]) -> None:
    """Raise ``ValueError`` naming ``name`` when ``values`` is empty."""
    if len(values) == 0:
        raise ValueError(f"{name} is empty; at least one example is needed")


def check_same_length(name_a: str, a: Sequence[Any], name_b: str, b: Sequence[Any]) -> None:
    """Raise ``ValueError`` naming both sequences when their lengths differ."""
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {name_a} has {len(a)} items but {name_b} has {len(b)}")


def check_strings(name: str, values: Sequence[Any]) -> None:
    """Raise ``TypeError`` naming the first item of ``values`` that is not a ``str``."""
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise TypeError(f"{name}[{i}] is {type(v).__name__}, expected str")


def check_text_pairs(name_a: str, a: Sequence[Any], name_b: str, b: Sequence[Any]) -> None:
    """Check two non-empty, equally long sequences of strings."""
    check_nonempty(name_a, a)
    check_same_length(name_a, a, name_b, b)
    check_strings(name_a, a)
    check_strings(name_b, b)

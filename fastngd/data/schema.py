"""Validation of benchmark rows against the fields a config requires."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

STRING = "str"
"""Field kind: a string."""

STRING_LIST = "list[str]"
"""Field kind: a non-empty list of strings."""


def validate_rows(
    rows: Sequence[Mapping[str, Any]],
    required: Mapping[str, str],
    *,
    where: str,
    optional: Mapping[str, str] | None = None,
) -> None:
    """Check that ``rows`` is non-empty and every row has the ``required`` fields and kinds.

    ``required`` and ``optional`` map a field name to :data:`STRING` or :data:`STRING_LIST`;
    optional fields are type-checked when present. ``where`` (e.g. ``"TOFU config
    'forget10', split 'train'"``) appears in every message. Raises ValueError for an empty
    split, KeyError for a missing field, TypeError for a field of the wrong type.
    """
    if len(rows) == 0:
        raise ValueError(f"{where} is empty")
    checks = {**(optional or {}), **required}
    for index, row in enumerate(rows):
        for field, kind in checks.items():
            if field not in row:
                if field in required:
                    raise KeyError(
                        f"{where}: row {index} has no field {field!r} "
                        f"(required: {sorted(required)}; present: {sorted(row)})"
                    )
                continue
            _check_kind(row[field], kind, f"{where}: row {index} field {field!r}")


def _check_kind(value: Any, kind: str, what: str) -> None:
    """Raise TypeError/ValueError when ``value`` is not of ``kind``."""
    if kind == STRING:
        if not isinstance(value, str):
            raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    elif kind == STRING_LIST:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise TypeError(f"{what} must be a list of str, got {type(value).__name__}")
        if len(value) == 0:
            raise ValueError(f"{what} is an empty list")
        for item in value:
            if not isinstance(item, str):
                raise TypeError(f"{what} must hold only str, found {type(item).__name__}")
    else:
        raise ValueError(f"unknown field kind {kind!r}")

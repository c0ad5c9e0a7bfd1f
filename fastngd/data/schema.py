"""Validation of benchmark rows against the fields a config requires."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fastngd.errors import InputError

STRING = "str"
"""Field kind: a string with a character that is not white space (every field of the
benchmarks is text that is trained on or scored: an empty one would score as remembered)."""

STRING_LIST = "list[str]"
"""Field kind: a non-empty list of :data:`STRING` values."""


def validate_rows(
    rows: Sequence[Any],
    required: Mapping[str, str],
    *,
    where: str,
    optional: Mapping[str, str] | None = None,
    source: str | Path | None = None,
    locations: Sequence[str] | None = None,
) -> None:
    """Check that ``rows`` is non-empty and every row has the ``required`` fields and kinds.

    ``required`` and ``optional`` map a field name to :data:`STRING` or :data:`STRING_LIST`;
    optional fields are type-checked when present. ``where`` (e.g. ``"TOFU config
    'forget10', split 'train'"``) starts every message; a row is named by ``source`` (the
    file it was read from) and its entry of ``locations`` (``"line 7"``), else by its
    0-based index (``"row 6"``). Every problem (an empty split, a row that is not an
    object, a missing field, a field of the wrong kind, an empty or blank string) raises
    :class:`~fastngd.errors.InputError` with one line naming the row and the field.
    """
    if len(rows) == 0:
        raise InputError(f"{where} is empty" + (f" ({source})" if source else ""))
    checks = {**(optional or {}), **required}
    for index, row in enumerate(rows):
        label = row_label(index, source, locations)
        if not isinstance(row, Mapping):
            raise InputError(
                f"{where}: {label}: the row is a {type(row).__name__}, not an object with "
                "named fields"
            )
        for field, kind in checks.items():
            if field not in row:
                if field in required:
                    raise InputError(
                        f"{where}: {label}: no field {field!r} "
                        f"(required: {sorted(required)}; present: {sorted(row)})"
                    )
                continue
            _check_kind(row[field], kind, f"{where}: {label}: field {field!r}")


def row_label(index: int, source: str | Path | None, locations: Sequence[str] | None) -> str:
    """``"{source}, line 7"`` for a row read from a file, ``"row 6"`` otherwise."""
    location = locations[index] if locations is not None else f"row {index}"
    return f"{source}, {location}" if source is not None else location


def _check_kind(value: Any, kind: str, what: str) -> None:
    """Raise InputError when ``value`` is not of ``kind`` (ValueError for an unknown kind)."""
    if kind == STRING:
        if not isinstance(value, str):
            raise InputError(f"{what} must be a str, got {type(value).__name__}")
        if not value.strip():
            raise InputError(f"{what} is empty")
    elif kind == STRING_LIST:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise InputError(f"{what} must be a list of str, got {type(value).__name__}")
        if len(value) == 0:
            raise InputError(f"{what} is an empty list")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise InputError(f"{what} must hold only str, found {type(item).__name__}")
            if not item.strip():
                raise InputError(f"{what}: item {i} is empty")
    else:
        raise ValueError(f"unknown field kind {kind!r}")

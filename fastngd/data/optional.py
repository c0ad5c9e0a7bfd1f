"""Optional benchmark splits: absent or broken ones are skipped with a warning.

A command that can do without a split (a ``*_perturbed`` config for the truth ratio, the
``*_icl`` few-shot examples, a holdout set) asks for it with ``optional=True``
(:func:`fastngd.data.load_tofu`, :func:`fastngd.data.load_muse`,
:func:`fastngd.data.load_benchmark`): a missing file, an unreadable or malformed one, or a
hub failure then gives ``None`` and one :class:`MissingDataWarning` naming the split and the
reason, instead of an error. Unknown config or split names still raise (they are mistakes
in the caller, not in the data).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from fastngd.errors import InputError

__all__ = ["MissingDataWarning", "load_optional"]


class MissingDataWarning(UserWarning):
    """An optional benchmark split is absent or unreadable and is treated as absent."""


def load_optional(
    load: Callable[[], list[dict[str, Any]]], what: str
) -> list[dict[str, Any]] | None:
    """``load()``, or ``None`` with a :class:`MissingDataWarning` when the data is missing or
    broken (``OSError`` such as ``FileNotFoundError``, :class:`~fastngd.errors.InputError`,
    or the ``RuntimeError`` of a failed hub download). ``what`` names the split in the
    warning (e.g. ``"TOFU config 'holdout10'"``)."""
    try:
        return load()
    except (OSError, InputError, RuntimeError) as exc:
        warnings.warn(
            f"optional {what} is treated as absent: {exc}", MissingDataWarning, stacklevel=3
        )
        return None

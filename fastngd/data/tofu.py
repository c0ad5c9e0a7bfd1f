"""TOFU loader: the hub dataset ``locuslab/TOFU`` or local files with its field names."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, overload

from fastngd.data.hub import load_split_checked
from fastngd.data.optional import load_optional
from fastngd.data.schema import STRING, STRING_LIST, row_label, validate_rows
from fastngd.errors import InputError

TOFU_HUB_ID = "locuslab/TOFU"
"""Hub id of TOFU."""

_QA = {"question": STRING, "answer": STRING}
_PERTURBED = {**_QA, "paraphrased_answer": STRING, "perturbed_answer": STRING_LIST}
_PERTURBED_FACTS = {**_QA, "perturbed_answer": STRING_LIST}

TOFU_SCHEMAS: dict[str, dict[str, str]] = {
    "full": _QA,
    "forget01": _QA,
    "forget05": _QA,
    "forget10": _QA,
    "retain99": _QA,
    "retain95": _QA,
    "retain90": _QA,
    "holdout01": _QA,
    "holdout05": _QA,
    "holdout10": _QA,
    "forget01_perturbed": _PERTURBED,
    "forget05_perturbed": _PERTURBED,
    "forget10_perturbed": _PERTURBED,
    "retain_perturbed": _PERTURBED,
    "real_authors": _QA,
    "world_facts": _QA,
    "real_authors_perturbed": _PERTURBED_FACTS,
    "world_facts_perturbed": _PERTURBED_FACTS,
}
"""Required fields (name → kind) of every TOFU config. ``holdoutXX`` are fictitious authors
the TOFU models were never trained on, used as non-members by membership inference."""

_OPTIONAL = {"paraphrased_answer": STRING, "perturbed_answer": STRING_LIST, "fact": STRING}
"""Fields checked where present; ``fact`` (the answer's key fact, for fact accuracy) must be
in every row of a split or in none, and hold a letter or digit."""


def validate_tofu(
    rows: list[dict[str, Any]],
    config: str,
    split: str = "train",
    *,
    source: str | Path | None = None,
    locations: list[str] | None = None,
) -> None:
    """Check ``rows`` against the schema of TOFU ``config``.

    Raises ValueError for an unknown config and :class:`~fastngd.errors.InputError` naming
    the config, the row (``source`` file and line when given) and the field otherwise.
    """
    if config not in TOFU_SCHEMAS:
        raise ValueError(f"unknown TOFU config {config!r}; valid: {sorted(TOFU_SCHEMAS)}")
    where = f"TOFU config {config!r}, split {split!r}"
    validate_rows(rows, TOFU_SCHEMAS[config], where=where, optional=_OPTIONAL, source=source,
                  locations=locations)
    _check_facts(rows, where, source, locations)


def _check_facts(rows: list[dict[str, Any]], where: str, source: str | Path | None,
                 locations: list[str] | None) -> None:
    """InputError unless ``fact`` is in every row or in none, and holds a letter or digit
    (fact accuracy looks for its words in the answer)."""
    have = [i for i, row in enumerate(rows) if "fact" in row]
    if have and len(have) < len(rows):
        first = next(i for i in range(len(rows)) if "fact" not in rows[i])
        raise InputError(
            f"{where}: field 'fact' is in {len(have)} of {len(rows)} rows (not in "
            f"{row_label(first, source, locations)}): give it in every row or in none")
    for i in have:
        if not any(ch.isalnum() for ch in rows[i]["fact"]):
            raise InputError(f"{where}: {row_label(i, source, locations)}: field 'fact' "
                             f"{rows[i]['fact']!r} has no letter or digit")


def _load(config: str, split: str, data_dir: str | Path | None) -> list[dict[str, Any]]:
    return load_split_checked(TOFU_HUB_ID, config, split, data_dir, validate_tofu)


@overload
def load_tofu(
    config: str,
    split: str = ...,
    data_dir: str | Path | None = ...,
    *,
    optional: Literal[False] = ...,
) -> list[dict[str, Any]]: ...


@overload
def load_tofu(
    config: str, split: str = ..., data_dir: str | Path | None = ..., *, optional: bool
) -> list[dict[str, Any]] | None: ...


def load_tofu(
    config: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    *,
    optional: bool = False,
) -> list[dict[str, Any]] | None:
    """Rows of TOFU ``config`` / ``split``, validated.

    With ``data_dir=None`` the rows come from the hub (``datasets.load_dataset("locuslab/TOFU",
    config, split=split)``); otherwise from ``{data_dir}/{config}/{split}.jsonl|.json|.parquet``
    or, for ``split="train"``, ``{data_dir}/{config}.jsonl|.json|.parquet``. Raises ValueError
    for an unknown config, FileNotFoundError for a missing local split, RuntimeError for a
    failed hub download and :class:`~fastngd.errors.InputError` (one line naming the file,
    line and field) for an empty split, unreadable bytes, a row that is not an object, a
    missing field or a field of the wrong type. With ``optional=True`` every failure but an
    unknown config gives ``None`` and a :class:`~fastngd.data.MissingDataWarning` instead.
    """
    if config not in TOFU_SCHEMAS:
        raise ValueError(f"unknown TOFU config {config!r}; valid: {sorted(TOFU_SCHEMAS)}")
    if optional:
        return load_optional(
            lambda: _load(config, split, data_dir), f"TOFU config {config!r}, split {split!r}"
        )
    return _load(config, split, data_dir)

"""TOFU loader: the hub dataset ``locuslab/TOFU`` or local files with its field names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastngd.data.files import read_local_split
from fastngd.data.hub import load_hub_split
from fastngd.data.schema import STRING, STRING_LIST, validate_rows

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
    "forget01_perturbed": _PERTURBED,
    "forget05_perturbed": _PERTURBED,
    "forget10_perturbed": _PERTURBED,
    "retain_perturbed": _PERTURBED,
    "real_authors": _QA,
    "world_facts": _QA,
    "real_authors_perturbed": _PERTURBED_FACTS,
    "world_facts_perturbed": _PERTURBED_FACTS,
}
"""Required fields (name → kind) of every TOFU config."""

_OPTIONAL = {"paraphrased_answer": STRING, "perturbed_answer": STRING_LIST}


def validate_tofu(rows: list[dict[str, Any]], config: str, split: str = "train") -> None:
    """Check ``rows`` against the schema of TOFU ``config`` (errors name config and field)."""
    if config not in TOFU_SCHEMAS:
        raise ValueError(f"unknown TOFU config {config!r}; valid: {sorted(TOFU_SCHEMAS)}")
    validate_rows(
        rows,
        TOFU_SCHEMAS[config],
        where=f"TOFU config {config!r}, split {split!r}",
        optional=_OPTIONAL,
    )


def load_tofu(
    config: str, split: str = "train", data_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """Rows of TOFU ``config`` / ``split``, validated.

    With ``data_dir=None`` the rows come from the hub (``datasets.load_dataset("locuslab/TOFU",
    config, split=split)``); otherwise from ``{data_dir}/{config}/{split}.jsonl|.json|.parquet``
    or, for ``split="train"``, ``{data_dir}/{config}.jsonl|.json|.parquet``. Raises ValueError
    for an unknown config or an empty split, FileNotFoundError for a missing local split,
    KeyError for a missing field and TypeError for a non-string question/answer.
    """
    if config not in TOFU_SCHEMAS:
        raise ValueError(f"unknown TOFU config {config!r}; valid: {sorted(TOFU_SCHEMAS)}")
    if data_dir is None:
        rows = load_hub_split(TOFU_HUB_ID, config, split)
    else:
        rows = read_local_split(data_dir, config, split)
    validate_tofu(rows, config, split)
    return rows

"""MUSE loader: ``muse-bench/MUSE-News`` / ``MUSE-Books`` or local files with their field names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastngd.data.files import read_local_split
from fastngd.data.hub import load_hub_split
from fastngd.data.schema import STRING, validate_rows

MUSE_CORPORA: dict[str, str] = {"News": "muse-bench/MUSE-News", "Books": "muse-bench/MUSE-Books"}
"""Hub id of each MUSE corpus."""

_TEXT = {"text": STRING}
_QA = {"question": STRING, "answer": STRING}

MUSE_SCHEMAS: dict[str, dict[str, dict[str, str]]] = {
    "raw": {"forget": _TEXT, "retain1": _TEXT, "retain2": _TEXT, "holdout": _TEXT},
    "verbmem": {"forget": {"prompt": STRING, "gt": STRING}},
    "knowmem": {"forget_qa": _QA, "retain_qa": _QA, "forget_qa_icl": _QA, "retain_qa_icl": _QA},
    "privleak": {"forget": _TEXT, "retain": _TEXT, "holdout": _TEXT},
}
"""Required fields (name → kind) of every MUSE config and split."""


def _check_config_split(config: str, split: str) -> None:
    """ValueError naming the valid choices when config or split is unknown."""
    if config not in MUSE_SCHEMAS:
        raise ValueError(f"unknown MUSE config {config!r}; valid: {sorted(MUSE_SCHEMAS)}")
    if split not in MUSE_SCHEMAS[config]:
        raise ValueError(
            f"unknown split {split!r} of MUSE config {config!r}; "
            f"valid: {sorted(MUSE_SCHEMAS[config])}"
        )


def validate_muse(rows: list[dict[str, Any]], config: str, split: str) -> None:
    """Check ``rows`` against the schema of MUSE ``config`` / ``split``."""
    _check_config_split(config, split)
    validate_rows(
        rows, MUSE_SCHEMAS[config][split], where=f"MUSE config {config!r}, split {split!r}"
    )


def load_muse(
    corpus: str, config: str, split: str, data_dir: str | Path | None = None
) -> list[dict[str, Any]]:
    """Rows of MUSE ``corpus`` ("News" or "Books") / ``config`` / ``split``, validated.

    With ``data_dir=None`` the rows come from the hub (``muse-bench/MUSE-News`` or
    ``muse-bench/MUSE-Books`` through ``datasets.load_dataset``); otherwise from
    ``{data_dir}/{config}/{split}.jsonl|.json|.parquet``. Raises ValueError for an unknown
    corpus/config/split or an empty split, FileNotFoundError for a missing local split,
    KeyError for a missing field and TypeError for a non-string field.
    """
    if corpus not in MUSE_CORPORA:
        raise ValueError(f"unknown MUSE corpus {corpus!r}; valid: {sorted(MUSE_CORPORA)}")
    _check_config_split(config, split)
    if data_dir is None:
        rows = load_hub_split(MUSE_CORPORA[corpus], config, split)
    else:
        rows = read_local_split(data_dir, config, split)
    validate_muse(rows, config, split)
    return rows

"""MUSE loader: ``muse-bench/MUSE-News`` / ``MUSE-Books`` or local files with their field names."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, overload

from fastngd.data.hub import load_split_checked
from fastngd.data.optional import load_optional
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


def validate_muse(
    rows: list[dict[str, Any]],
    config: str,
    split: str,
    *,
    source: str | Path | None = None,
    locations: list[str] | None = None,
) -> None:
    """Check ``rows`` against the schema of MUSE ``config`` / ``split``.

    Raises ValueError for an unknown config or split and :class:`~fastngd.errors.InputError`
    naming the row (``source`` file and line when given) and the field otherwise.
    """
    _check_config_split(config, split)
    validate_rows(
        rows,
        MUSE_SCHEMAS[config][split],
        where=f"MUSE config {config!r}, split {split!r}",
        source=source,
        locations=locations,
    )


def _load(
    corpus: str, config: str, split: str, data_dir: str | Path | None
) -> list[dict[str, Any]]:
    return load_split_checked(MUSE_CORPORA[corpus], config, split, data_dir, validate_muse)


@overload
def load_muse(
    corpus: str,
    config: str,
    split: str,
    data_dir: str | Path | None = ...,
    *,
    optional: Literal[False] = ...,
) -> list[dict[str, Any]]: ...


@overload
def load_muse(
    corpus: str, config: str, split: str, data_dir: str | Path | None = ..., *, optional: bool
) -> list[dict[str, Any]] | None: ...


def load_muse(
    corpus: str,
    config: str,
    split: str,
    data_dir: str | Path | None = None,
    *,
    optional: bool = False,
) -> list[dict[str, Any]] | None:
    """Rows of MUSE ``corpus`` ("News" or "Books") / ``config`` / ``split``, validated.

    With ``data_dir=None`` the rows come from the hub (``muse-bench/MUSE-News`` or
    ``muse-bench/MUSE-Books`` through ``datasets.load_dataset``); otherwise from
    ``{data_dir}/{config}/{split}.jsonl|.json|.parquet``. Raises ValueError for an unknown
    corpus/config/split, FileNotFoundError for a missing local split, RuntimeError for a
    failed hub download and :class:`~fastngd.errors.InputError` (one line naming the file,
    line and field) for an empty split, unreadable bytes or a malformed row. With
    ``optional=True`` (e.g. for the ``*_icl`` few-shot examples or the holdout texts) every
    failure but an unknown name gives ``None`` and a
    :class:`~fastngd.data.MissingDataWarning` instead.
    """
    if corpus not in MUSE_CORPORA:
        raise ValueError(f"unknown MUSE corpus {corpus!r}; valid: {sorted(MUSE_CORPORA)}")
    _check_config_split(config, split)
    if optional:
        return load_optional(
            lambda: _load(corpus, config, split, data_dir),
            f"MUSE-{corpus} config {config!r}, split {split!r}",
        )
    return _load(corpus, config, split, data_dir)

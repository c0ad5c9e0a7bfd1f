"""Reading and writing benchmark splits as local files (JSON Lines, JSON, parquet).

Layout of a local benchmark directory, shared by the loaders and by the exporter:

* ``{data_dir}/{config}/{split}.jsonl`` (or ``.json``, ``.parquet``), for any split;
* ``{data_dir}/{config}.jsonl`` (or ``.json``, ``.parquet``), for the ``train`` split only
  (TOFU configs have a single ``train`` split).

Candidates are tried in that order (nested before flat, then ``.jsonl``, ``.json``,
``.parquet``); the first existing file is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fastngd.atomic import atomic_write

EXTENSIONS: tuple[str, ...] = (".jsonl", ".json", ".parquet")
"""File extensions the loaders read, in order of preference."""


def candidate_paths(data_dir: str | Path, config: str, split: str) -> list[Path]:
    """Paths where ``config``/``split`` may be stored under ``data_dir``, in search order."""
    root = Path(data_dir)
    paths = [root / config / f"{split}{ext}" for ext in EXTENSIONS]
    if split == "train":
        paths += [root / f"{config}{ext}" for ext in EXTENSIONS]
    return paths


def split_path(out_dir: str | Path, config: str, split: str) -> Path:
    """Where the exporter writes ``config``/``split``: ``{out_dir}/{config}/{split}.jsonl``."""
    return Path(out_dir) / config / f"{split}.jsonl"


def _read_jsonl(path: Path) -> list[Any]:
    """Rows of a JSON Lines file (blank lines skipped)."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(
                        f"{path}: line {number} is not valid JSON ({exc.msg})"
                    ) from exc
    return rows


def _read_json(path: Path, split: str) -> list[Any]:
    """Rows of a JSON file: a list, ``{split: [...]}``, ``{"data": [...]}``, or JSON Lines."""
    text = path.read_text(encoding="utf-8")
    try:
        content = json.loads(text)
    except json.JSONDecodeError:
        return _read_jsonl(path)  # the hub's own to_json writes JSON Lines into .json files
    if isinstance(content, list):
        return content
    if isinstance(content, dict):
        for key in (split, "data"):
            if isinstance(content.get(key), list):
                return content[key]
        raise ValueError(
            f"{path}: JSON object has no list under {split!r} or 'data' (keys: {sorted(content)})"
        )
    raise ValueError(f"{path}: expected a JSON list of rows, got {type(content).__name__}")


def _read_parquet(path: Path) -> list[Any]:
    """Rows of a parquet file."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    return pq.read_table(path).to_pylist()


def read_rows(path: str | Path, split: str = "train") -> list[dict[str, Any]]:
    """Rows stored in ``path`` (by extension); TypeError when a row is not an object."""
    path = Path(path)
    if path.suffix == ".jsonl":
        rows = _read_jsonl(path)
    elif path.suffix == ".json":
        rows = _read_json(path, split)
    elif path.suffix == ".parquet":
        rows = _read_parquet(path)
    else:
        raise ValueError(f"{path}: unsupported extension {path.suffix!r} (use {EXTENSIONS})")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TypeError(f"{path}: row {index} is a {type(row).__name__}, not an object")
    return rows


def read_local_split(data_dir: str | Path, config: str, split: str) -> list[dict[str, Any]]:
    """Rows of ``config``/``split`` under ``data_dir`` (see the module docstring for the layout).

    Raises FileNotFoundError naming the config, the split and every path tried.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir {str(root)!r} is not a directory")
    paths = candidate_paths(root, config, split)
    for path in paths:
        if path.is_file():
            return read_rows(path, split)
    tried = ", ".join(str(p) for p in paths)
    raise FileNotFoundError(
        f"no file for config {config!r}, split {split!r} in {root} (tried: {tried})"
    )


def write_jsonl_atomic(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as JSON Lines to ``path`` through a temporary file and a rename.

    The file appears complete or not at all (the temporary file is removed on error).
    Parent directories are created.
    """
    def write(handle: Any) -> None:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    return atomic_write(path, write)

"""Reading and writing benchmark splits as local files (JSON Lines, JSON, parquet).

Layout of a local benchmark directory, shared by the loaders and by the exporter:

* ``{data_dir}/{config}/{split}.jsonl`` (or ``.json``, ``.parquet``), for any split;
* ``{data_dir}/{config}.jsonl`` (or ``.json``, ``.parquet``), for the ``train`` split only
  (TOFU configs have a single ``train`` split).

Candidates are tried in that order (nested before flat, then ``.jsonl``, ``.json``,
``.parquet``); the first existing file is read.

Every problem with a file's content (bytes that are not UTF-8, a line that is not JSON, a row
that is not an object) raises :class:`fastngd.errors.InputError` with one line naming the
file and the line (JSON Lines) or row (JSON arrays, parquet; 0-based index) at fault. The
``*_located`` readers also return, for every row, where it came from (``"line 7"`` or
``"row 6"``), so that schema checks can name the file and line of a bad field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastngd.atomic import atomic_write
from fastngd.errors import InputError

EXTENSIONS: tuple[str, ...] = (".jsonl", ".json", ".parquet")
"""File extensions the loaders read, in order of preference."""


def candidate_paths(data_dir: str | Path, config: str, split: str) -> list[Path]:
    """Paths where ``config``/``split`` may be stored under ``data_dir``, in search order."""
    root = Path(data_dir)
    paths = [root / config / f"{split}{ext}" for ext in EXTENSIONS]
    if split == "train":
        paths += [root / f"{config}{ext}" for ext in EXTENSIONS]
    return paths


def has_split_file(data_dir: str | Path, config: str, split: str) -> bool:
    """Whether one of the :func:`candidate_paths` of ``config``/``split`` is a file."""
    return any(path.is_file() for path in candidate_paths(data_dir, config, split))


def extensions_text(extensions: Sequence[str] = EXTENSIONS) -> str:
    """``extensions`` for messages: ``".jsonl, .json or .parquet"``."""
    *first, last = extensions
    return f"{', '.join(first)} or {last}" if first else last


def describe_candidates(config: str, split: str) -> str:
    """The file names :func:`candidate_paths` tries for ``config``/``split``, relative to the
    data folder, for messages: ``forget10/train.jsonl, .json or .parquet, or
    forget10.jsonl, .json or .parquet``."""
    stems = dict.fromkeys(path.with_suffix("") for path in candidate_paths(Path(), config, split))
    others = extensions_text(EXTENSIONS[1:])
    return ", or ".join(f"{stem.as_posix()}{EXTENSIONS[0]}, {others}" for stem in stems)


def foreign_suffixes(data_dir: str | Path, limit: int = 1000) -> list[str]:
    """The sorted extensions, other than :data:`EXTENSIONS`, of the files in ``data_dir`` and
    its sub-folders (two levels; at most ``limit`` entries looked at), for messages about a
    folder whose files are not read (``[".csv"]``)."""
    found: set[str] = set()
    seen = 0
    folders = [Path(data_dir)]
    for _ in range(2):
        next_folders: list[Path] = []
        for folder in folders:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            for entry in entries:
                seen += 1
                if seen > limit:
                    return sorted(found)
                if entry.is_dir():
                    next_folders.append(entry)
                elif entry.suffix and entry.suffix not in EXTENSIONS:
                    found.add(entry.suffix)
        folders = next_folders
    return sorted(found)


def split_path(out_dir: str | Path, config: str, split: str) -> Path:
    """Where the exporter writes ``config``/``split``: ``{out_dir}/{config}/{split}.jsonl``."""
    return Path(out_dir) / config / f"{split}.jsonl"


def _read_text(path: Path) -> str:
    """The file decoded as UTF-8; InputError naming the line and byte of the first bad byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(
            f"{path}: line {line} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at column "
            f"{column}); save the file as UTF-8"
        ) from exc


def _parse_jsonl(path: Path, text: str) -> tuple[list[Any], list[str]]:
    """Rows of JSON Lines ``text`` (blank lines skipped) and their ``"line N"`` locations."""
    rows: list[Any] = []
    where: list[str] = []
    # split on "\n" only: str.splitlines would also split inside strings holding U+2028
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {number} is not valid JSON ({exc.msg})") from exc
        where.append(f"line {number}")
    return rows, where


def _parse_json(path: Path, text: str, split: str) -> tuple[list[Any], list[str]]:
    """Rows of a JSON file: a list, ``{split: [...]}``, ``{"data": [...]}``, or JSON Lines."""
    try:
        content = json.loads(text)
    except json.JSONDecodeError:
        return _parse_jsonl(path, text)  # the hub's own to_json writes JSON Lines into .json files
    if isinstance(content, dict):
        for key in (split, "data"):
            if isinstance(content.get(key), list):
                content = content[key]
                break
        else:
            raise InputError(
                f"{path}: JSON object has no list under {split!r} or 'data' "
                f"(keys: {sorted(content)})"
            )
    if not isinstance(content, list):
        raise InputError(f"{path}: expected a JSON list of rows, got {type(content).__name__}")
    return content, [f"row {i}" for i in range(len(content))]


def _read_parquet(path: Path) -> list[Any]:
    """Rows of a parquet file; InputError when it cannot be read."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    try:
        return list(pq.read_table(path).to_pylist())
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        raise InputError(f"{path}: not a readable parquet file ({exc})") from exc


def read_rows_located(
    path: str | Path, split: str = "train"
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows stored in ``path`` (by extension) and, per row, where it is in the file.

    Locations are ``"line N"`` (1-based) for JSON Lines and ``"row N"`` (0-based index) for
    JSON arrays and parquet. Raises :class:`~fastngd.errors.InputError` (a ``ValueError``)
    for an unsupported extension, non-UTF-8 bytes, invalid JSON or a row that is not an
    object, naming the file and line or row.
    """
    path = Path(path)
    if path.suffix == ".jsonl":
        rows, where = _parse_jsonl(path, _read_text(path))
    elif path.suffix == ".json":
        rows, where = _parse_json(path, _read_text(path), split)
    elif path.suffix == ".parquet":
        rows = _read_parquet(path)
        where = [f"row {i}" for i in range(len(rows))]
    else:
        raise InputError(f"{path}: unsupported extension {path.suffix!r} (use {EXTENSIONS})")
    for row, location in zip(rows, where):
        if not isinstance(row, dict):
            raise InputError(
                f"{path}, {location}: the row is a JSON {type(row).__name__}, not an object "
                "with named fields"
            )
    return rows, where


def read_rows(path: str | Path, split: str = "train") -> list[dict[str, Any]]:
    """Rows stored in ``path``; raises like :func:`read_rows_located`."""
    return read_rows_located(path, split)[0]


def find_local_split(data_dir: str | Path, config: str, split: str) -> Path:
    """The file holding ``config``/``split`` under ``data_dir`` (module docstring: layout).

    Raises FileNotFoundError naming the config, the split and every path tried.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir {str(root)!r} is not a directory")
    paths = candidate_paths(root, config, split)
    for path in paths:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in paths)
    raise FileNotFoundError(
        f"no file for config {config!r}, split {split!r} in {root} (tried: {tried})"
    )


def read_local_split_located(
    data_dir: str | Path, config: str, split: str
) -> tuple[list[dict[str, Any]], Path, list[str]]:
    """``(rows, path, locations)`` of ``config``/``split`` under ``data_dir``.

    Raises FileNotFoundError like :func:`find_local_split` and InputError like
    :func:`read_rows_located`.
    """
    path = find_local_split(data_dir, config, split)
    rows, where = read_rows_located(path, split)
    return rows, path, where


def read_local_split(data_dir: str | Path, config: str, split: str) -> list[dict[str, Any]]:
    """Rows of ``config``/``split`` under ``data_dir`` (see :func:`read_local_split_located`)."""
    return read_local_split_located(data_dir, config, split)[0]


def write_jsonl_atomic(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as JSON Lines to ``path`` through a temporary file and a rename.

    The file appears complete or not at all (the temporary file is removed on error).
    Parent directories are created.
    """

    def write(handle: Any) -> None:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    return atomic_write(path, write)

"""Output folders and JSON files of the commands: never overwrite silently, write atomically,
check writability before any work, leave no empty folder behind after a failure."""
from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastngd.atomic import atomic_write
from fastngd.errors import InputError, UsageError

__all__ = [
    "check_writable", "output_file", "output_folder", "prepare_out_dir", "write_json",
    "write_text",
]


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_writable(folder: str | Path, flag: str = "--out") -> None:
    """Create and delete a scratch file in ``folder``; InputError naming ``flag`` when the
    folder is read-only, on a read-only file system or otherwise unwritable."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"{flag} {folder} is not writable ({_why(exc)})") from exc


def _missing_ancestors(path: Path) -> list[Path]:
    """``path`` and its parents that do not exist yet, deepest first."""
    out = []
    current = path
    while not current.exists() and current != current.parent:
        out.append(current)
        current = current.parent
    return out


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders that are (now) empty, deepest first; empty subfolders go too."""
    for folder in folders:
        if not folder.is_dir():
            continue
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
            try:
                sub.rmdir()
            except OSError:
                pass
        try:
            folder.rmdir()
        except OSError:
            pass


def prepare_out_dir(path: str | Path, overwrite: bool = False, *, resume: bool = False) -> Path:
    """Create ``path`` or accept an empty existing folder, and check it is writable.

    A folder that already holds files is refused with FileExistsError unless ``overwrite``
    (then its files may be replaced, others are left alone) or ``resume`` (it may hold the
    run being resumed); a file at ``path`` is refused with NotADirectoryError; a folder that
    cannot be created or written is an InputError.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        with_resume = " (with --resume)" if resume else ""
        raise NotADirectoryError(f"--out {out} exists and is not a folder{with_resume}")
    if out.exists() and any(out.iterdir()) and not (overwrite or resume):
        raise FileExistsError(
            f"output folder {out} already exists and is not empty; choose another --out or "
            "pass --overwrite"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create --out {out} ({_why(exc)})") from exc
    check_writable(out)
    return out


@contextmanager
def output_folder(path: str | Path, overwrite: bool = False, *, resume: bool = False) -> Iterator[Path]:
    """:func:`prepare_out_dir` (with ``resume``: the folder may hold a run already), then
    yield it; when the body raises, the folders this call created are removed again if
    nothing was written into them."""
    out = Path(path)
    created = _missing_ancestors(out)
    prepare_out_dir(out, overwrite, resume=resume)
    try:
        yield out
    except BaseException:
        _remove_empty(created)
        raise


def output_file(path: str | Path, overwrite: bool = False) -> Path:
    """Check before any work that the JSON report ``path`` can be written later: not an
    existing file (unless ``overwrite``), not a folder, and its nearest existing folder
    writable (missing folders are created when the file is written)."""
    out = Path(path)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out / 'eval.json'}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite")
    missing = _missing_ancestors(out.parent)
    existing = missing[-1].parent if missing else out.parent
    if not existing.is_dir():
        raise InputError(f"cannot write --out {out}: {existing} is not a folder")
    check_writable(existing)
    return out


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON through a temporary file renamed into place."""
    def write(handle: Any) -> None:
        json.dump(_clean(data), handle, indent=2, sort_keys=False)
        handle.write("\n")

    return atomic_write(path, write)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) through a temporary file renamed into place."""
    return atomic_write(path, lambda handle: handle.write(text))

"""Atomic file writes: a file appears complete or not at all, with ordinary permissions.

``tempfile.mkstemp`` creates files readable by their owner only (mode 0600) and
``tempfile.mkdtemp`` folders of mode 0700. Results, models and exported data written through
a temporary file must instead look like any other file the user creates: mode
``0o666 & ~umask`` for files and ``0o777 & ~umask`` for folders (or, when a file is replaced,
the mode it had).
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["atomic_write", "current_umask", "default_mode", "make_temp_dir", "write_folder"]


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows
    (``/proc/self/status`` on Linux), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """Mode of a newly created file (``0o666 & ~umask``) or folder (``0o777 & ~umask``)."""
    return (0o777 if directory else 0o666) & ~current_umask()


def make_temp_dir(parent: str | Path, prefix: str) -> Path:
    """A fresh folder inside ``parent`` (created if needed) with the mode of an ordinary new
    folder (:func:`default_mode`), meant to be renamed into place once filled."""
    root = Path(parent)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    os.chmod(tmp, default_mode(directory=True))
    return tmp


def atomic_write(path: str | Path, write: Callable[[IO[Any]], object], *,
                 binary: bool = False) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, flush it to disk, then
    rename it over ``path`` (``os.replace`` is atomic). On any error the temporary file is
    removed and ``path`` is left as it was. Parent directories are created. The file gets
    the mode of the file it replaces, or that of a new file under the current umask.
    Returns ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = default_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        handle: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")
        with handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_folder(out_dir: str | Path, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call ``write(tmp_dir)`` on a fresh sibling folder, then put its files in place.

    Without ``overwrite`` the folder is renamed to ``out_dir`` (which must not exist or be
    empty: FileExistsError otherwise), so ``out_dir`` is either complete or absent. With ``overwrite`` an existing ``out_dir``
    keeps every file that ``write`` did not produce; each produced file replaces its
    namesake (one atomic rename per file). Nothing else is ever deleted. Returns ``out_dir``.
    """
    out = Path(out_dir)
    tmp = make_temp_dir(out.parent, f".{out.name}.tmp-")
    try:
        write(tmp)
        if not (overwrite and out.exists()):
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise FileExistsError(f"{out} already exists")
            os.replace(tmp, out)
            return out
        if not out.is_dir():
            raise NotADirectoryError(f"{out} exists and is not a folder")
        for item in sorted(tmp.rglob("*")):
            if item.is_file():
                target = out / item.relative_to(tmp)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out

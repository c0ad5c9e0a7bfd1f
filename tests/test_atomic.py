"""Atomic writes: complete or absent, and with the permissions of any other new file."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fastngd.atomic import atomic_write, current_umask, default_mode, make_temp_dir, write_folder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_files_and_folders_follow_the_umask(tmp_path: Path, umask, mask: int) -> None:
    umask(mask)
    assert current_umask() == mask
    path = atomic_write(tmp_path / "a.json", lambda h: h.write("{}"))
    assert _mode(path) == 0o666 & ~mask == default_mode()
    assert _mode(make_temp_dir(tmp_path, ".t")) == 0o777 & ~mask
    out = write_folder(tmp_path / "model", lambda d: (d / "w.bin").write_bytes(b"1"))
    assert _mode(out) == 0o777 & ~mask and _mode(out / "w.bin") == 0o666 & ~mask


def test_replacing_a_file_keeps_its_mode(tmp_path: Path, umask) -> None:
    path = tmp_path / "a.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    atomic_write(path, lambda h: h.write("new"))
    assert path.read_text() == "new" and _mode(path) == 0o640


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("old")

    def broken(handle):
        handle.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, broken)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_write_folder_overwrite_replaces_only_its_files(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "w.bin").write_bytes(b"old")

    def write(folder: Path) -> None:
        (folder / "w.bin").write_bytes(b"new")
        (folder / "adapter").mkdir()
        (folder / "adapter" / "a.bin").write_bytes(b"a")

    with pytest.raises(FileExistsError):
        write_folder(out, write)  # never merged into an existing folder without overwrite
    write_folder(out, write, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "w.bin").read_bytes() == b"new"
    assert (out / "adapter" / "a.bin").read_bytes() == b"a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]

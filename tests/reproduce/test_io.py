"""Output folders: checked before the work, cleaned after a failure, never rmtree'd."""
from __future__ import annotations

from pathlib import Path

import pytest

from fastngd.errors import InputError, UsageError
from fastngd.reproduce.io import output_file, output_folder, prepare_out_dir


def test_failure_removes_only_the_folders_it_created(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(RuntimeError), output_folder(out):
        (out / "checkpoint").mkdir()
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # a, b, run and the empty checkpoint are gone
    (tmp_path / "kept").mkdir()
    with pytest.raises(RuntimeError), output_folder(tmp_path / "kept"):
        raise RuntimeError("boom")
    assert (tmp_path / "kept").is_dir()  # it existed before


def test_failure_keeps_what_was_written(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), output_folder(out):
        (out / "history.json").write_text("[]")
        raise RuntimeError("boom")
    assert (out / "history.json").exists()


def test_existing_content_needs_overwrite_and_is_kept(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_out_dir(tmp_path)
    with output_folder(tmp_path, overwrite=True) as out:
        assert out == tmp_path
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(NotADirectoryError):
        prepare_out_dir(tmp_path / "notes.txt")


def test_resume_accepts_a_folder_with_a_run(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text("{}")
    with output_folder(tmp_path, resume=True) as out:
        assert out == tmp_path
    with pytest.raises(NotADirectoryError, match="--resume"), \
            output_folder(tmp_path / "summary.json", resume=True):
        pass
    assert prepare_out_dir(tmp_path, resume=True) == tmp_path
    assert (tmp_path / "summary.json").read_text() == "{}"
    with pytest.raises(NotADirectoryError) as refused:
        prepare_out_dir(tmp_path / "summary.json")
    assert "--resume" not in str(refused.value)


def test_unwritable_places_are_input_errors(tmp_path: Path, monkeypatch) -> None:
    from fastngd.reproduce import io

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(io.tempfile, "TemporaryFile", refuse)
    with pytest.raises(InputError, match="--out .* is not writable .Permission denied"):
        prepare_out_dir(tmp_path / "run")


def test_output_file_checks(tmp_path: Path) -> None:
    assert output_file(tmp_path / "new" / "eval.json") == tmp_path / "new" / "eval.json"
    assert not (tmp_path / "new").exists()  # created only when the file is written
    with pytest.raises(UsageError, match="is a folder"):
        output_file(tmp_path)
    (tmp_path / "eval.json").write_text("{}")
    with pytest.raises(FileExistsError, match="--overwrite"):
        output_file(tmp_path / "eval.json")
    assert output_file(tmp_path / "eval.json", overwrite=True)
    with pytest.raises(InputError, match="not a folder"):
        output_file(tmp_path / "eval.json" / "x.json")

"""Tests of the MUSE loader (local files and the hub code path, mocked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastngd.data import MissingDataWarning
from fastngd.data.files import write_jsonl_atomic
from fastngd.data.muse import load_muse
from fastngd.errors import InputError


def test_loads_local_split(tmp_path: Path) -> None:
    rows = [{"prompt": "The start", "gt": "the end"}]
    write_jsonl_atomic(tmp_path / "verbmem" / "forget.jsonl", rows)
    assert load_muse("News", "verbmem", "forget", data_dir=tmp_path) == rows
    assert load_muse("Books", "verbmem", "forget", data_dir=tmp_path) == rows


@pytest.mark.parametrize(
    "corpus,config,split,match",
    [
        ("Poems", "raw", "forget", r"corpus 'Poems'.*Books"),
        ("News", "rawtext", "forget", r"config 'rawtext'.*knowmem"),
        ("News", "raw", "retain", r"split 'retain'.*retain1"),
        ("News", "knowmem", "forget", r"split 'forget'.*forget_qa"),
    ],
)
def test_unknown_names(tmp_path: Path, corpus: str, config: str, split: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_muse(corpus, config, split, data_dir=tmp_path)


def test_missing_split_and_fields(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"'raw', split 'holdout'"):
        load_muse("News", "raw", "holdout", data_dir=tmp_path)
    write_jsonl_atomic(tmp_path / "raw" / "holdout.jsonl", [{"body": "x"}])
    with pytest.raises(InputError, match=r"'raw', split 'holdout'.*line 1: no field 'text'"):
        load_muse("News", "raw", "holdout", data_dir=tmp_path)
    write_jsonl_atomic(tmp_path / "knowmem" / "retain_qa.jsonl", [{"question": "q", "answer": 3}])
    with pytest.raises(InputError, match="retain_qa.jsonl, line 1: field 'answer' must be a str"):
        load_muse("News", "knowmem", "retain_qa", data_dir=tmp_path)
    (tmp_path / "privleak").mkdir()
    (tmp_path / "privleak" / "forget.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        load_muse("News", "privleak", "forget", data_dir=tmp_path)


def test_hub_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        return [{"text": "hello"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert load_muse("News", "raw", "forget") == [{"text": "hello"}]
    assert load_muse("Books", "privleak", "holdout") == [{"text": "hello"}]
    assert calls == [
        ("muse-bench/MUSE-News", "raw", "forget"),
        ("muse-bench/MUSE-Books", "privleak", "holdout"),
    ]


def test_optional_icl_split(tmp_path: Path) -> None:
    match = r"MUSE-News config 'knowmem', split 'forget_qa_icl'"
    with pytest.warns(MissingDataWarning, match=match):
        assert load_muse("News", "knowmem", "forget_qa_icl", tmp_path, optional=True) is None
    (tmp_path / "knowmem").mkdir()
    (tmp_path / "knowmem" / "forget_qa_icl.json").write_text("[1, 2]")
    with pytest.warns(MissingDataWarning, match="row 0: the row is a JSON int"):
        assert load_muse("News", "knowmem", "forget_qa_icl", tmp_path, optional=True) is None
    with pytest.raises(ValueError, match="unknown split"):
        load_muse("News", "knowmem", "forget_icl", tmp_path, optional=True)

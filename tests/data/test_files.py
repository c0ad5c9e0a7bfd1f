"""Tests of local file reading/writing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fastngd.data.files import (
    candidate_paths,
    describe_candidates,
    extensions_text,
    foreign_suffixes,
    has_split_file,
    read_local_split,
    read_local_split_located,
    read_rows,
    read_rows_located,
    split_path,
    write_jsonl_atomic,
)
from fastngd.errors import InputError

ROWS = [{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": "a2"}]


def test_jsonl_roundtrip_and_split_path(tmp_path: Path) -> None:
    path = write_jsonl_atomic(split_path(tmp_path, "forget10", "train"), ROWS)
    assert path == tmp_path / "forget10" / "train.jsonl"
    assert read_rows(path) == ROWS
    assert read_local_split(tmp_path, "forget10", "train") == ROWS
    # no temporary file left behind
    assert os.listdir(path.parent) == ["train.jsonl"]


def test_json_variants(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    (tmp_path / "b.json").write_text(json.dumps({"train": ROWS}))
    (tmp_path / "c.json").write_text(json.dumps({"data": ROWS}))
    (tmp_path / "d.json").write_text("\n".join(json.dumps(r) for r in ROWS))  # JSON Lines in .json
    for name in "abcd":
        assert read_rows(tmp_path / f"{name}.json", "train") == ROWS
    (tmp_path / "e.json").write_text(json.dumps({"other": ROWS}))
    with pytest.raises(ValueError, match="'train'"):
        read_rows(tmp_path / "e.json", "train")


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [{"question": "q", "answer": "a", "perturbed_answer": ["x", "y"]}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "world_facts_perturbed.parquet")
    assert read_local_split(tmp_path, "world_facts_perturbed", "train") == rows


def test_flat_layout_only_for_train(tmp_path: Path) -> None:
    write_jsonl_atomic(tmp_path / "full.jsonl", ROWS)
    assert read_local_split(tmp_path, "full", "train") == ROWS
    assert tmp_path / "full.jsonl" not in candidate_paths(tmp_path, "full", "test")
    with pytest.raises(FileNotFoundError, match=r"config 'full', split 'test'"):
        read_local_split(tmp_path, "full", "test")


def test_nested_preferred_over_flat(tmp_path: Path) -> None:
    write_jsonl_atomic(tmp_path / "full.jsonl", ROWS[:1])
    write_jsonl_atomic(tmp_path / "full" / "train.jsonl", ROWS)
    assert read_local_split(tmp_path, "full", "train") == ROWS


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a directory"):
        read_local_split(tmp_path / "missing", "full", "train")
    (tmp_path / "bad.jsonl").write_text('{"question": "q"}\n{oops\n')
    with pytest.raises(InputError, match=r"bad.jsonl: line 2 is not valid JSON"):
        read_rows(tmp_path / "bad.jsonl")
    (tmp_path / "list.jsonl").write_text('{"question": "q"}\n\n["not", "an", "object"]\n')
    with pytest.raises(InputError, match=r"list.jsonl, line 3: the row is a JSON list"):
        read_rows(tmp_path / "list.jsonl")
    (tmp_path / "list.json").write_text('[{"question": "q"}, 7]')
    with pytest.raises(InputError, match=r"list.json, row 1: the row is a JSON int"):
        read_rows(tmp_path / "list.json")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="unsupported extension"):
        read_rows(tmp_path / "x.csv")
    (tmp_path / "scalar.json").write_text("3")
    with pytest.raises(InputError, match="expected a JSON list"):
        read_rows(tmp_path / "scalar.json")


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_non_utf8_bytes_name_the_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"forget10{suffix}"
    path.write_bytes(b'{"question": "q", "answer": "a"}\n{"question": "caf\xe9", "answer": "b"}\n')
    with pytest.raises(InputError, match=r"line 2 is not valid UTF-8 \(byte 0xe9 at column 18\)"):
        read_rows(path)


def test_locations_follow_file_lines(tmp_path: Path) -> None:
    (tmp_path / "full.jsonl").write_text('\n{"a": 1}\n\n{"a": 2}\n')
    rows, where = read_rows_located(tmp_path / "full.jsonl")
    assert rows == [{"a": 1}, {"a": 2}] and where == ["line 2", "line 4"]
    (tmp_path / "full.json").write_text('[{"a": 1}, {"a": 2}]')
    assert read_rows_located(tmp_path / "full.json")[1] == ["row 0", "row 1"]
    rows, path, where = read_local_split_located(tmp_path, "full", "train")
    assert path == tmp_path / "full.jsonl" and where == ["line 2", "line 4"]


def test_line_separator_inside_a_string_is_not_a_new_line(tmp_path: Path) -> None:
    rows = [{"text": "one\u2028two"}, {"text": "three"}]
    write_jsonl_atomic(tmp_path / "t.jsonl", rows)
    assert read_rows_located(tmp_path / "t.jsonl") == (rows, ["line 1", "line 2"])


def test_atomic_write_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out" / "train.jsonl"
    write_jsonl_atomic(target, ROWS)

    def rows():
        yield {"ok": 1}
        raise RuntimeError("generation failed")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(target, rows())
    assert read_rows(target) == ROWS  # previous content intact
    assert os.listdir(target.parent) == ["train.jsonl"]
    with pytest.raises(TypeError):
        write_jsonl_atomic(tmp_path / "new.jsonl", [{"x": object()}])
    assert not (tmp_path / "new.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_messages_name_the_files_and_extensions_read(tmp_path: Path) -> None:
    assert extensions_text() == ".jsonl, .json or .parquet"
    assert extensions_text((".jsonl",)) == ".jsonl"
    assert describe_candidates("forget10", "train") == (
        "forget10/train.jsonl, .json or .parquet, or forget10.jsonl, .json or .parquet")
    assert describe_candidates("raw", "forget") == "raw/forget.jsonl, .json or .parquet"


def test_split_files_and_the_other_extensions_found(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "train.csv").write_text("question,answer\n")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "deep" / "er" / "still").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "still" / "x.xlsx").write_text("")  # below two levels
    assert not has_split_file(tmp_path, "full", "train")
    assert foreign_suffixes(tmp_path) == [".csv", ".txt"]
    (tmp_path / "full.json").write_text("[]")
    assert has_split_file(tmp_path, "full", "train")
    assert foreign_suffixes(tmp_path) == [".csv", ".txt"]  # .json is read

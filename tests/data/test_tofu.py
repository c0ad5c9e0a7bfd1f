"""Tests of the TOFU loader (local files and the hub code path, mocked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastngd.data import MissingDataWarning
from fastngd.data.files import write_jsonl_atomic
from fastngd.data.tofu import TOFU_SCHEMAS, load_tofu
from fastngd.errors import InputError

QA = [{"question": "Where was Ada born?", "answer": "Ada was born in Lisbon."}]
PERTURBED = [
    {
        **QA[0],
        "paraphrased_answer": "Lisbon is where Ada was born.",
        "perturbed_answer": ["Ada was born in Oslo."] * 5,
    }
]


def test_loads_local_jsonl(tmp_path: Path) -> None:
    write_jsonl_atomic(tmp_path / "forget10.jsonl", QA)
    write_jsonl_atomic(tmp_path / "forget10_perturbed" / "train.jsonl", PERTURBED)
    assert load_tofu("forget10", data_dir=tmp_path) == QA
    assert load_tofu("forget10_perturbed", "train", str(tmp_path)) == PERTURBED


def test_unknown_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown TOFU config 'forget42'.*forget10"):
        load_tofu("forget42", data_dir=tmp_path)


def test_missing_split_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"'retain90', split 'train'"):
        load_tofu("retain90", data_dir=tmp_path)


def test_missing_field_named_with_config(tmp_path: Path) -> None:
    write_jsonl_atomic(tmp_path / "forget10_perturbed.jsonl", QA)
    match = r"forget10_perturbed.*line 1: no field 'paraphrased_answer'"
    with pytest.raises(InputError, match=match):
        load_tofu("forget10_perturbed", data_dir=tmp_path)
    write_jsonl_atomic(tmp_path / "full.jsonl", [{"question": "q"}])
    with pytest.raises(InputError, match=r"'full'.*'answer'"):
        load_tofu("full", data_dir=tmp_path)


def test_empty_split(tmp_path: Path) -> None:
    (tmp_path / "full.jsonl").write_text("")
    with pytest.raises(InputError, match=r"TOFU config 'full', split 'train' is empty"):
        load_tofu("full", data_dir=tmp_path)


def test_non_string_answers(tmp_path: Path) -> None:
    write_jsonl_atomic(tmp_path / "full.jsonl", [*QA, {"question": "q", "answer": 1987}])
    path = tmp_path / "full.jsonl"
    match = rf"'full', split 'train': {path}, line 2: field 'answer' must be a str, got int"
    with pytest.raises(InputError, match=match):
        load_tofu("full", data_dir=tmp_path)
    bad = [{**PERTURBED[0], "perturbed_answer": "not a list"}]
    write_jsonl_atomic(tmp_path / "retain_perturbed.jsonl", bad)
    with pytest.raises(InputError, match="line 1: field 'perturbed_answer' must be a list"):
        load_tofu("retain_perturbed", data_dir=tmp_path)
    bad = [{**PERTURBED[0], "perturbed_answer": []}]
    write_jsonl_atomic(tmp_path / "retain_perturbed.jsonl", bad)
    with pytest.raises(InputError, match="empty list"):
        load_tofu("retain_perturbed", data_dir=tmp_path)
    # optional fields are type-checked when present
    bad = [{**QA[0], "paraphrased_answer": None}]
    write_jsonl_atomic(tmp_path / "forget05.jsonl", bad)
    with pytest.raises(InputError, match="paraphrased_answer"):
        load_tofu("forget05", data_dir=tmp_path)


@pytest.mark.parametrize("rows, match", [
    ([{**PERTURBED[0], "answer": ""}], r"line 1: field 'answer' is empty"),
    ([{**PERTURBED[0], "question": "  "}], r"line 1: field 'question' is empty"),
    ([{**PERTURBED[0], "perturbed_answer": ["x", " "]}], r"'perturbed_answer': item 1 is empty"),
    ([{**PERTURBED[0], "fact": 1973}], r"line 1: field 'fact' must be a str, got int"),
    ([{**PERTURBED[0], "fact": None}], r"field 'fact' must be a str, got NoneType"),
    ([{**PERTURBED[0], "fact": "?!"}], r"line 1: field 'fact' '\?!' has no letter or digit"),
    ([{**PERTURBED[0], "fact": "Lisbon"}, PERTURBED[0]],
     r"'fact' is in 1 of 2 rows \(not in .*line 2\)"),
])
def test_empty_text_and_bad_facts_are_refused_at_load(tmp_path: Path, rows, match) -> None:
    """An empty answer would score as remembered, and a fact that is not text, not in every
    row or without a word would fail (or vanish) only at evaluation: all are refused when
    the file is read, naming the line."""
    write_jsonl_atomic(tmp_path / "forget10_perturbed.jsonl", rows)
    with pytest.raises(InputError, match=match):
        load_tofu("forget10_perturbed", data_dir=tmp_path)


def test_facts_in_any_script_load(tmp_path: Path) -> None:
    rows = [{**QA[0], "fact": "Lisbon"}, {"question": "Где?", "answer": "В Москве.",
                                          "fact": "Москве"}, {**QA[0], "fact": "科幻"}]
    write_jsonl_atomic(tmp_path / "full.jsonl", rows)
    assert load_tofu("full", data_dir=tmp_path) == rows


def test_hub_path_uses_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        return list(PERTURBED)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert load_tofu("forget10_perturbed") == PERTURBED
    assert calls == [("locuslab/TOFU", "forget10_perturbed", "train")]


def test_hub_failure_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        RuntimeError, match=r"'locuslab/TOFU' config 'full' split 'train'.*data_dir"
    ):
        load_tofu("full")


def test_hub_rows_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: [{"question": "q"}])
    with pytest.raises(InputError, match="row 0: no field 'answer'"):
        load_tofu("full")


def test_schema_covers_hub_configs() -> None:
    for config in (
        "full",
        "forget01",
        "forget05",
        "forget10",
        "retain90",
        "retain95",
        "retain99",
        "forget10_perturbed",
        "retain_perturbed",
        "world_facts_perturbed",
        "real_authors_perturbed",
        "holdout01",
        "holdout05",
        "holdout10",
    ):
        assert {"question", "answer"} <= set(TOFU_SCHEMAS[config])


def test_row_that_is_a_list_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "forget10.jsonl").write_text('{"question": "q", "answer": "a"}\n["q", "a"]\n')
    with pytest.raises(InputError, match=r"forget10.jsonl, line 2: the row is a JSON list"):
        load_tofu("forget10", data_dir=tmp_path)


def test_non_utf8_file_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "retain90.jsonl").write_bytes(b'{"question": "q", "answer": "\xff"}\n')
    with pytest.raises(InputError, match=r"retain90.jsonl: line 1 is not valid UTF-8"):
        load_tofu("retain90", data_dir=tmp_path)


def test_optional_config_missing_or_broken_is_absent_with_a_warning(tmp_path: Path) -> None:
    write_jsonl_atomic(tmp_path / "forget10.jsonl", QA)
    with pytest.warns(MissingDataWarning, match=r"'forget10_perturbed'.*no file"):
        assert load_tofu("forget10_perturbed", data_dir=tmp_path, optional=True) is None
    write_jsonl_atomic(tmp_path / "forget10_perturbed.jsonl", [{**PERTURBED[0], "answer": 5}])
    with pytest.warns(MissingDataWarning, match=r"line 1: field 'answer' must be a str"):
        assert load_tofu("forget10_perturbed", data_dir=tmp_path, optional=True) is None
    (tmp_path / "holdout10.jsonl").write_bytes(b"\xfe\n")
    with pytest.warns(MissingDataWarning, match="not valid UTF-8"):
        assert load_tofu("holdout10", data_dir=tmp_path, optional=True) is None
    # a good optional file loads as usual; mandatory loads still raise
    assert load_tofu("forget10", data_dir=tmp_path, optional=True) == QA
    with pytest.raises(InputError):
        load_tofu("forget10_perturbed", data_dir=tmp_path)
    # an unknown config is the caller's mistake, optional or not
    with pytest.raises(ValueError, match="unknown TOFU config"):
        load_tofu("holdout42", data_dir=tmp_path, optional=True)


def test_optional_hub_failure_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.warns(MissingDataWarning, match="holdout10.*no network"):
        assert load_tofu("holdout10", optional=True) is None

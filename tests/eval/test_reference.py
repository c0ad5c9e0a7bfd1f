"""Reference truth ratios: saved, loaded (also from eval outputs), checked, compared."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fastngd.errors import InputError
from fastngd.eval import (
    ReferenceTruthRatios,
    forget_quality_against,
    forget_quality_from_logs,
    load_reference_truth_ratios,
    reference_from_result,
    save_reference_truth_ratios,
)

ROWS = [
    {"question": "q1", "log_truth_ratio": -0.5},
    {"question": "q2", "log_truth_ratio": 0.2},
    {"question": "q3", "log_truth_ratio": -3.0},
]
RESULT = {"settings": {"forget_split": "forget10"}, "per_example": {"forget": ROWS}}


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    ref = reference_from_result(RESULT, model="retain-model")
    assert ref.questions == ("q1", "q2", "q3") and ref.forget_split == "forget10"
    path = save_reference_truth_ratios(tmp_path / "ref.json", ref)
    assert load_reference_truth_ratios(path) == ref
    # the file `fastngd eval --out` writes (result nested under "result") loads too
    (tmp_path / "eval.json").write_text(json.dumps({"model": "m", "result": RESULT}))
    loaded = load_reference_truth_ratios(tmp_path / "eval.json")
    assert loaded.log_truth_ratios == ref.log_truth_ratios and loaded.model == "m"


def test_questions_are_matched_in_any_order() -> None:
    ref = ReferenceTruthRatios((0.1, -1.0, 2.0), ("q3", "q1", "q2"))
    values = [r["log_truth_ratio"] for r in ROWS]
    assert forget_quality_against(ROWS, ref) == pytest.approx(
        forget_quality_from_logs(values, [0.1, -1.0, 2.0])
    )
    assert forget_quality_against(ROWS, reference_from_result(RESULT)) == pytest.approx(1.0)


def test_mismatched_questions_are_refused() -> None:
    ref = ReferenceTruthRatios((0.0, 0.0, 0.0), ("q1", "q2", "other"))
    with pytest.raises(InputError, match=r"1 of the 3 evaluated forget questions.*'q3'"):
        forget_quality_against(ROWS, ref)
    # bare values (no questions) cannot be checked and are used as given
    assert 0.0 < forget_quality_against(ROWS, ReferenceTruthRatios((5.0, 6.0))) <= 1.0


def test_old_results_with_truth_ratios_only() -> None:
    rows = [{"question": "q", "truth_ratio": 0.5}]
    ref = reference_from_result({"per_example": {"forget": rows}})
    assert ref.log_truth_ratios == (pytest.approx(math.log(0.5)),)


def test_bad_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_reference_truth_ratios(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_bytes(b"\xff{")
    with pytest.raises(InputError, match="bad.json: not a JSON file"):
        load_reference_truth_ratios(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(InputError, match="expected a JSON object"):
        load_reference_truth_ratios(tmp_path / "list.json")
    no_tr = {"per_example": {"forget": [{"question": "q", "truth_ratio": None}]}}
    (tmp_path / "plain.json").write_text(json.dumps(no_tr))
    with pytest.raises(InputError, match="plain.json: .*no truth ratio for forget row 0"):
        load_reference_truth_ratios(tmp_path / "plain.json")
    (tmp_path / "nan.json").write_text('{"log_truth_ratios": [NaN], "questions": ["q"]}')
    with pytest.raises(InputError, match="not finite"):
        load_reference_truth_ratios(tmp_path / "nan.json")
    with pytest.raises(InputError, match="2 questions but 1 values"):
        ReferenceTruthRatios((0.0,), ("a", "b"))

"""bench/_quality_report.py: which runs beat NGDiff + AutoLR (the fixed-rate sweep and the
frontier against the baselines), on hand-made records."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def report():
    sys.path.insert(0, str(BENCH))
    try:
        import _quality_report
        import _quality_run

        yield _quality_report, _quality_run.Run
    finally:
        sys.path.remove(str(BENCH))


BEFORE = {"forget_rouge_l_recall": 1.0, "forget_fact_accuracy": 1.0,
          "retain_rouge_l_recall": 1.0, "retain_fact_accuracy": 1.0}


def _rec(forget: float, retain: float, facts: float = 0.0) -> dict:
    return {"before": BEFORE, "metrics": {
        "forget_rouge_l_recall": forget, "forget_fact_accuracy": facts,
        "retain_rouge_l_recall": retain, "retain_fact_accuracy": retain}}


def test_beats_is_dominance_by_more_than_the_margin_or_the_bar(report) -> None:
    q, _ = report
    auto = _rec(0.0, 0.96)
    assert q.beats("tofu", auto, _rec(0.0, 1.0), 0.005)           # better retain
    assert not q.beats("tofu", auto, _rec(0.0, 0.963), 0.005)     # within the margin
    assert not q.beats("tofu", auto, _rec(0.01, 1.0), 0.005)      # worse forget
    assert not q.beats("tofu", auto, auto, 0.005)                 # a tie
    assert q.beats("tofu", _rec(0.0, 0.94), _rec(0.01, 0.951), 0.005)  # the bar: 0.95x
    assert q.beats("tofu", {"before": BEFORE, "metrics": None}, auto, 0.005)
    assert not q.beats("tofu", auto, {"before": BEFORE, "metrics": None}, 0.005)


def test_frontier_and_sweep_lines(report) -> None:
    q, Run = report
    d = "tofu-synthetic/forget05"
    records = [(Run(d, "ngdiff", "gen-guard", 0.1, 0), _rec(0.0, 0.99)),
               (Run(d, "ngdiff", "fixed", 0.05, 0), _rec(0.0, 1.0)),
               (Run(d, "ngdiff", "fixed", 0.2, 0), _rec(0.0, 0.9)),
               (Run(d, "gdiff-0.9", "fixed", 0.1, 0), _rec(0.0, 0.98)),
               (Run(d, "sago", "fixed", 0.1, 0), _rec(0.0, 1.0)),
               (Run(d, "npo", "fixed", 0.1, 1), _rec(0.0, 1.0))]   # another seed
    sweep = q.autolr_vs_fixed(d, records)
    assert len(sweep) == 1 and "WORSE than fixed lr=0.05" in sweep[0] and "0.2" not in sweep[0]
    front = q.frontier(d, records)
    assert front == [f"{q.group_key(records[0][0])} s0: DOMINATED by sago lr=0.1"]
    records[4] = (records[4][0], _rec(0.0, 0.99))
    assert q.frontier(d, records)[0].endswith("on the frontier against 2 baseline runs")


def test_the_retain_axis_is_capped_at_the_target(report) -> None:
    q, _ = report
    at_target, above = _rec(0.0, 1.0), _rec(0.0, 1.1)
    assert not q.beats("tofu", at_target, above, 0.005)           # both keep all of it
    assert q.beats("tofu", at_target, above, 0.005, cap=float("inf"))
    assert q.beats("tofu", _rec(0.0, 0.99), above, 0.005)         # below the target: counts
    assert q.beats("tofu", _rec(0.01, 1.2), _rec(0.0, 1.0), 0.005)  # cap on both sides
    nothing = {**BEFORE, "retain_rouge_l_recall": 0.0}           # the target keeps nothing
    zero, some = ({**_rec(0.0, r), "before": nothing} for r in (0.0, 0.5))
    assert not q.beats("tofu", zero, some, 0.005)                # both keep all of it
    assert q.beats("tofu", zero, some, 0.005, cap=float("inf"))  # raw values uncapped


def test_a_verdict_the_cap_changes_shows_the_uncapped_one(report) -> None:
    q, Run = report
    d = "tofu-synthetic/forget05"
    records = [(Run(d, "ngdiff", "gen-guard", 0.1, 0), _rec(0.0, 1.0)),
               (Run(d, "ngdiff", "fixed", 0.2, 0), _rec(0.0, 1.1)),
               (Run(d, "lossnorm", "fixed", 0.1, 0), _rec(0.0, 1.1))]
    sweep, front = q.autolr_vs_fixed(d, records), q.frontier(d, records)
    assert sweep[0].endswith("not worse than any fixed rate of the sweep (0.2) "
                             "(uncapped retain axis: WORSE than fixed lr=0.2)")
    assert front[0].endswith("on the frontier against 1 baseline runs "
                             "(uncapped retain axis: DOMINATED by lossnorm lr=0.1)")
    records[2] = (records[2][0], _rec(0.0, 0.99))
    assert q.frontier(d, records)[0].endswith("on the frontier against 1 baseline runs")

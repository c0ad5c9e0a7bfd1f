"""Which runs ``fastngd reproduce`` makes."""
from __future__ import annotations

import pytest

from fastngd.errors import UsageError
from fastngd.reproduce.demo import FULL_RUNS
from fastngd.reproduce.experiment import select_runs
from fastngd.unlearn import UnlearnConfig


def test_methods_run_with_and_without_autolr_at_the_config_rate() -> None:
    runs = select_runs("ngdiff, gdiff-0.3", None, None, FULL_RUNS)
    assert [(r.name, r.method, r.autolr) for r in runs] == [
        ("ngdiff+autolr", "ngdiff", True), ("ngdiff", "ngdiff", False),
        ("gdiff-0.3+autolr", "gdiff-0.3", True), ("gdiff-0.3", "gdiff-0.3", False)]
    assert {r.lr for r in runs} == {UnlearnConfig().lr}
    assert [r.name for r in select_runs("npo", False, 0.2, FULL_RUNS)] == ["npo"]


def test_default_runs_filtered_and_rate_overridden() -> None:
    runs = select_runs(None, True, 0.3, FULL_RUNS)
    assert runs and all(r.autolr and r.lr == 0.3 for r in runs)
    with pytest.raises(UsageError, match="valid methods"):
        select_runs("magic", None, None, FULL_RUNS)

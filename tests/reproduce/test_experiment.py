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


def test_runs_and_config_are_computed_once_for_all_seeds(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastngd.reproduce import experiment as experiment_module

    selected: list[object] = []
    seen: list[tuple[int, object, object]] = []
    real = experiment_module.select_runs

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        selected.append(args)
        return real(*args, **kwargs)

    def one_seed(exp, runs, config, seed, root):  # type: ignore[no-untyped-def]
        seen.append((seed, runs, config))
        return {"seed": seed, "no_unlearn": {"verbmem": 0.5},
                "methods": {r.name: {"verbmem": 0.25} for r in runs}}

    monkeypatch.setattr(experiment_module, "select_runs", counting)
    monkeypatch.setattr(experiment_module, "_lm_seed", one_seed)
    exp = experiment_module.Experiment("tofu", tmp_path / "out", seeds=(0, 1, 2),
                                       methods="ngdiff", settings={"epochs": 2})
    aggregate = experiment_module.run_experiment(exp, log=lambda s: None)
    assert len(selected) == 1
    assert [s for s, _, _ in seen] == [0, 1, 2]
    assert all(runs is seen[0][1] and config is seen[0][2] for _, runs, config in seen)
    assert seen[0][2].epochs == 2
    assert set(aggregate["methods"]) == {"ngdiff+autolr", "ngdiff"}
    bad = experiment_module.Experiment("tofu", tmp_path / "bad", methods="magic")
    with pytest.raises(UsageError, match="valid methods"):
        experiment_module.run_experiment(bad, log=lambda s: None)
    assert not (tmp_path / "bad").exists()

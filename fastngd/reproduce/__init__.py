"""Experiments: the demo, TOFU- and MUSE-style runs over methods and seeds, digits.

* :func:`run_demo` — ``fastngd demo``;
* :func:`run_experiment` — ``fastngd reproduce`` (an :class:`Experiment` over seeds);
* :func:`evaluate_model` — ``fastngd eval``;
* :func:`run_tofu`, :func:`run_muse` — one seed, several :class:`RunSpec` runs;
* :func:`run_digits` — class unlearning on scikit-learn's digits;
* :func:`aggregate_seeds` — mean and standard deviation over seeds.

The names are imported on first use (PEP 562), so that the commands which only need the
output helpers of :mod:`fastngd.reproduce.io` (``fastngd unlearn``) do not import the
evaluator and the experiments.
"""
from __future__ import annotations

import importlib
from typing import Any

_SOURCES: dict[str, str] = {
    "aggregate_seeds": "aggregate",
    "seed_table": "aggregate",
    "DEMO_RUNS": "demo",
    "FULL_RUNS": "demo",
    "run_demo": "demo",
    "run_digits": "digits",
    "evaluate_model": "evaluation",
    "Experiment": "experiment",
    "run_experiment": "experiment",
    "select_runs": "experiment",
    "muse_evaluator": "muse",
    "run_muse": "muse",
    "RunSpec": "tofu",
    "run_tofu": "tofu",
    "summarise_tofu": "tofu",
    "tofu_curve": "tofu",
}

__all__ = sorted(_SOURCES)  # noqa: PLE0605 (a list)


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its module on first use."""
    if name not in _SOURCES:
        raise AttributeError(f"module 'fastngd.reproduce' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fastngd.reproduce.{_SOURCES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))

"""Experiments: the demo, TOFU- and MUSE-style runs over methods and seeds, digits.

* :func:`run_demo` — ``fastngd demo``;
* :func:`run_experiment` — ``fastngd reproduce`` (an :class:`Experiment` over seeds);
* :func:`evaluate_model` — ``fastngd eval``;
* :func:`run_tofu`, :func:`run_muse` — one seed, several :class:`RunSpec` runs;
* :func:`run_digits` — class unlearning on scikit-learn's digits;
* :func:`aggregate_seeds` — mean and standard deviation over seeds.
"""
from fastngd.reproduce.aggregate import aggregate_seeds, seed_table
from fastngd.reproduce.demo import DEMO_RUNS, FULL_RUNS, run_demo
from fastngd.reproduce.digits import run_digits
from fastngd.reproduce.evaluation import evaluate_model
from fastngd.reproduce.experiment import Experiment, run_experiment, select_runs
from fastngd.reproduce.muse import muse_evaluator, run_muse
from fastngd.reproduce.tofu import RunSpec, run_tofu, summarise_tofu, tofu_curve

__all__ = [
    "DEMO_RUNS",
    "FULL_RUNS",
    "Experiment",
    "RunSpec",
    "aggregate_seeds",
    "evaluate_model",
    "muse_evaluator",
    "run_demo",
    "run_digits",
    "run_experiment",
    "run_muse",
    "run_tofu",
    "seed_table",
    "select_runs",
    "summarise_tofu",
    "tofu_curve",
]

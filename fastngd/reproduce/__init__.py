"""Experiments: the demo, TOFU- and MUSE-style runs over methods and seeds, digits.

* :func:`run_demo` — ``fastngd demo``;
* :func:`run_tofu`, :func:`run_muse` — one seed, several :class:`RunSpec` runs;
* :func:`run_digits` — class unlearning on scikit-learn's digits;
* :func:`aggregate_seeds` — mean and standard deviation over seeds.
"""
from fastngd.reproduce.aggregate import aggregate_seeds, seed_table
from fastngd.reproduce.demo import DEMO_RUNS, FULL_RUNS, run_demo
from fastngd.reproduce.digits import run_digits
from fastngd.reproduce.muse import run_muse
from fastngd.reproduce.tofu import RunSpec, run_tofu, summarise_tofu

__all__ = [
    "DEMO_RUNS",
    "FULL_RUNS",
    "RunSpec",
    "aggregate_seeds",
    "run_demo",
    "run_digits",
    "run_muse",
    "run_tofu",
    "seed_table",
    "summarise_tofu",
]

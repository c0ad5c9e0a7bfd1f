"""The grids of ``bench/quality.py``: named lists of :class:`Run`.

Screens (``screen-*``) tune on ``tofu-synthetic`` only (one seed, forget01/05/10); the
held-out sets (``people``, ``muse-synthetic``, ``chronicles``, ``digits``) appear only in the
final grids, which use the defaults chosen on the screens.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _quality_run import Run

TOFU_SPLITS = ("tofu-synthetic/forget01", "tofu-synthetic/forget05", "tofu-synthetic/forget10")


def _runs(datasets: tuple[str, ...], specs: list[tuple[str, str, float, dict[str, Any]]],
          seeds: tuple[int, ...] = (0,), base: str = "sgd") -> list[Run]:
    return [Run(d, method, step, lr, seed, base, options)
            for d in datasets for seed in seeds for method, step, lr, options in specs]


def screen_gen() -> list[Run]:
    """Today's GeN against fixed rates and the guarded GeN, tofu-synthetic forget10."""
    specs: list[tuple[str, str, float, dict[str, Any]]] = [
        ("ngdiff", "fixed", lr, {}) for lr in (0.02, 0.05, 0.1, 0.2)
    ]
    specs += [("ngdiff", "gen", 0.05, {"autolr_scale": k}) for k in (1.0, 1.8)]
    specs += [("ngdiff", "gen-guard", 0.05, {"guard": {}})]
    return _runs(("tofu-synthetic/forget10",), specs)


GRIDS: dict[str, Callable[[], list[Run]]] = {
    "screen-gen": screen_gen,
}

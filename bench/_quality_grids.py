"""The grids of ``bench/quality.py``: named lists of :class:`Run`.

Screens (``screen-*``) tune on ``tofu-synthetic`` only (one seed, forget01/05/10); the
held-out sets (``people``, ``muse-synthetic``, ``chronicles``, ``digits``) appear only in the
final grids, which use the defaults chosen on the screens.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from _quality_run import Run

TOFU_SPLITS = ("tofu-synthetic/forget01", "tofu-synthetic/forget05", "tofu-synthetic/forget10")
ASCENT = {"forget_target": "ascent"}
"""The paper's forget target (unbounded gradient ascent, stopped by the mean rise rule): the
screens below were run with it, before ``"refuse"`` became the default."""


def _ascent_era(grid: Callable[[], list[Run]]) -> Callable[[], list[Run]]:
    """``grid`` with the ``"ascent"`` forget target on every run (the screens that chose the
    step-size and run-length defaults, run before the ``"refuse"`` target existed)."""

    def wrapped() -> list[Run]:
        return [replace(r, options={**ASCENT, **r.options}) for r in grid()]

    wrapped.__doc__ = grid.__doc__
    wrapped.__name__ = grid.__name__
    return wrapped


def _runs(datasets: tuple[str, ...], specs: list[tuple[str, str, float, dict[str, Any]]],
          seeds: tuple[int, ...] = (0,), base: str = "sgd") -> list[Run]:
    return [Run(d, method, step, lr, seed, base, options)
            for d in datasets for seed in seeds for method, step, lr, options in specs]


@_ascent_era
def screen_gen() -> list[Run]:
    """Today's GeN against fixed rates and the guarded GeN, tofu-synthetic forget10."""
    specs: list[tuple[str, str, float, dict[str, Any]]] = [
        ("ngdiff", "fixed", lr, {}) for lr in (0.02, 0.05, 0.1, 0.2)
    ]
    specs += [("ngdiff", "gen", 0.05, {"autolr_scale": k}) for k in (1.0, 1.8)]
    specs += [("ngdiff", "gen-guard", 0.05, {"guard": {}})]
    return _runs(("tofu-synthetic/forget10",), specs)


#: guard settings screened: a trust region [1/4, 4] × the initial rate and a back-off only
#: once the retain-loss trend has risen by half its best level plus 0.1 nats (the retain loss
#: of a memorised target is ~0.005: a purely relative tolerance fires on noise).
GUARD = {"tol": 0.5, "tol_abs": 0.1, "max_scale": 4.0, "min_scale": 0.25}


@_ascent_era
def screen_sgd() -> list[Run]:
    """NGDiff with the SGD base on tofu-synthetic forget01/05/10: fixed rates, the paper's
    GeN (κ = 1.8, every 2) and gen-guard from two initial rates."""
    specs: list[tuple[str, str, float, dict[str, Any]]] = [
        ("ngdiff", "fixed", lr, {}) for lr in (0.05, 0.1, 0.2)
    ]
    specs += [("ngdiff", "gen", 0.05, {"autolr_scale": 1.8})]
    specs += [("ngdiff", "gen-guard", lr, {"autolr_scale": 1.8, "guard": GUARD})
              for lr in (0.05, 0.1)]
    return _runs(TOFU_SPLITS, specs)


@_ascent_era
def screen_adam() -> list[Run]:
    """NGDiff with the Adam base on tofu-synthetic forget10 and forget01: fixed rates."""
    specs: list[tuple[str, str, float, dict[str, Any]]] = [
        ("ngdiff", "fixed", lr, {}) for lr in (1e-4, 3e-4, 1e-3)
    ]
    return _runs(("tofu-synthetic/forget10", "tofu-synthetic/forget01"), specs, base="adam")


GUARD_WIDE = {**GUARD, "tol_abs": 0.3, "min_scale": 0.5}
"""A looser back-off (0.3 nats) and a higher floor (half the initial rate)."""


@_ascent_era
def screen_sgd2() -> list[Run]:
    """Round 2 (after ``screen-sgd``: forget ROUGE-L stays at 0.04–0.12 in 30 epochs):
    more forgetting from gen-guard — a looser guard, 60 epochs, a higher initial rate — and
    the fixed rate 0.1 at 60 epochs for comparison."""
    g = {"autolr_scale": 1.8}
    specs: list[tuple[str, str, float, dict[str, Any]]] = [
        ("ngdiff", "gen-guard", 0.1, {**g, "guard": GUARD_WIDE}),
        ("ngdiff", "gen-guard", 0.1, {**g, "guard": GUARD, "epochs": 60}),
        ("ngdiff", "gen-guard", 0.2, {**g, "guard": GUARD}),
        ("ngdiff", "fixed", 0.1, {"epochs": 60}),
    ]
    return _runs(TOFU_SPLITS, specs)


@_ascent_era
def screen_adam2() -> list[Run]:
    """Round 2, Adam base: gen-guard from the two best fixed rates; forget05 fixed; and the
    SGD base with 60 epochs and the forget-loss stopping rule."""
    g = {"autolr_scale": 1.8, "guard": GUARD}
    specs: list[tuple[str, str, float, dict[str, Any]]] = [
        ("ngdiff", "gen-guard", lr, g) for lr in (1e-4, 3e-4)
    ]
    runs = _runs(TOFU_SPLITS, specs, base="adam")
    runs += _runs(("tofu-synthetic/forget05",), [("ngdiff", "fixed", 3e-4, {})], base="adam")
    stop = {**g, "epochs": 60, "stop": {"rise": 30.0, "min_steps": 60}}
    return runs + _runs(TOFU_SPLITS, [("ngdiff", "gen-guard", 0.1, stop)])


CHOSEN_RUN = {"epochs": 60, "stop": {"rise": 30.0, "min_steps": 60}}
"""The run length chosen on the screens (now ``UnlearnConfig``'s defaults): at most 60
epochs, stopping once the smoothed forget loss has risen by 30 nats after ≥ 60 steps."""


@_ascent_era
def screen_final() -> list[Run]:
    """The fixed-rate sweep at the chosen run length (SGD: 0.05/0.1/0.2; Adam: 1e-4/3e-4/1e-3)
    next to gen-guard from the chosen rates, on tofu-synthetic forget01/05/10."""
    g = {"autolr_scale": 1.8, "guard": GUARD, **CHOSEN_RUN}
    sgd: list[tuple[str, str, float, dict[str, Any]]] = [
        ("ngdiff", "fixed", lr, CHOSEN_RUN) for lr in (0.05, 0.1, 0.2)
    ] + [("ngdiff", "gen-guard", 0.1, g)]
    adam: list[tuple[str, str, float, dict[str, Any]]] = [
        ("ngdiff", "fixed", lr, CHOSEN_RUN) for lr in (1e-4, 3e-4, 1e-3)
    ] + [("ngdiff", "gen-guard", 3e-4, g)]
    return _runs(TOFU_SPLITS, sgd) + _runs(TOFU_SPLITS, adam, base="adam")


@_ascent_era
def screen_example() -> list[Run]:
    """The per-example stopping rule (:class:`fastngd.unlearn.ExampleLossStop`) on
    tofu-synthetic forget01/05/10, seed 0, NGDiff + gen-guard from the defaults: with the
    mean rule as a floor (60 or 120 epochs), and alone (no minimum step count, 120 epochs)
    at rises of 10 and 30 nats, q = 0 and q = 0.1."""
    floor = {"stop_example_rise": 30.0}
    alone = {"stop_rise": None, "stop_min_steps": 0, "epochs": 120}
    specs: list[tuple[str, str, float, dict[str, Any]]] = [
        ("ngdiff", "gen-guard", 0.1, floor),
        ("ngdiff", "gen-guard", 0.1, {**floor, "epochs": 120}),
        ("ngdiff", "gen-guard", 0.1, {**alone, "stop_example_rise": 30.0}),
        ("ngdiff", "gen-guard", 0.1, {**alone, "stop_example_rise": 10.0}),
        ("ngdiff", "gen-guard", 0.1, {**alone, "stop_example_rise": 30.0, "stop_quantile": 0.1}),
    ]
    return _runs(TOFU_SPLITS, specs)


EXAMPLE_FLOOR = {"stop_example_rise": 30.0}
"""The per-example rule (every forget example risen by 30 nats) on top of the mean rule."""


@_ascent_era
def screen_example_seeds() -> list[Run]:
    """The two candidates of ``screen-example`` that keep the mean rule as a floor (60 and
    120 epochs) and the defaults, on tofu-synthetic seeds 1 and 2 (the tuned set's other
    seeds; the held-out sets stay untouched)."""
    specs: list[tuple[str, str, float, dict[str, Any]]] = [
        ("ngdiff", "gen-guard", 0.1, EXAMPLE_FLOOR),
        ("ngdiff", "gen-guard", 0.1, {**EXAMPLE_FLOOR, "epochs": 120}),
    ]
    return _runs(TOFU_SPLITS, specs + DEFAULTS, seeds=(1, 2))


HELDOUT = ("people/forget01", "people/forget05", "people/forget10", "muse-synthetic",
           "chronicles", "digits")
DEFAULTS: list[tuple[str, str, float, dict[str, Any]]] = [("ngdiff", "gen-guard", 0.1, {})]
"""NGDiff + AutoLR with ``fastngd unlearn``'s defaults (SGD base; no option overridden)."""
ADAM_DEFAULTS: list[tuple[str, str, float, dict[str, Any]]] = [("ngdiff", "gen-guard", 3e-4, {})]
"""The same with the Adam base and its default rate (``UnlearnConfig.for_base("adam")``)."""


def heldout() -> list[Run]:
    """Held out, seed 0, defaults untouched: NGDiff + AutoLR (SGD and Adam bases) and the
    fixed-rate sweep of NGDiff (SGD: 0.05/0.1/0.2)."""
    sweep = [("ngdiff", "fixed", lr, {}) for lr in (0.05, 0.1, 0.2)]
    return (_runs(HELDOUT, DEFAULTS + sweep) + _runs(HELDOUT, ADAM_DEFAULTS, base="adam"))


def baselines() -> list[Run]:
    """GDiff-0.5, NPO and SimNPO at the default rate (fixed, SGD base), seed 0, on every data
    set (the tuned one included)."""
    specs = [(m, "fixed", 0.1, {}) for m in ("gdiff-0.5", "npo", "simnpo")]
    return _runs(TOFU_SPLITS + HELDOUT, specs)


def baselines_wide() -> list[Run]:
    """The other baselines at the default rate (fixed, SGD base), seed 0: the GDiff sweep
    over c (0.1, 0.9) and lr (0.05, 0.2 at c = 0.5), LossNorm, PCGrad, MGDA, IMTL-G, SAGO."""
    specs: list[tuple[str, str, float, dict[str, Any]]] = [
        (m, "fixed", 0.1, {}) for m in ("gdiff-0.1", "gdiff-0.9", "lossnorm", "pcgrad", "mgda",
                                         "imtlg", "sago")
    ] + [("gdiff-0.5", "fixed", lr, {}) for lr in (0.05, 0.2)]
    return _runs(TOFU_SPLITS + HELDOUT, specs)


def seeds() -> list[Run]:
    """NGDiff + AutoLR with the defaults (SGD base), seeds 0, 1, 2, on every data set."""
    return _runs(TOFU_SPLITS + HELDOUT, DEFAULTS, seeds=(0, 1, 2))


EXAMPLE_CAP = {**EXAMPLE_FLOOR, "objective_options": {"cap": 40.0}}
"""The per-example rule with the capped forget cross-entropy (an example stops pushing once
its token-mean loss reaches 40 nats)."""


@_ascent_era
def screen_cap() -> list[Run]:
    """The per-example rule with the capped forget objective (``cap`` = 40 nats per token)
    on tofu-synthetic forget01/05/10, seeds 0, 1, 2 (after ``screen-example-seeds``: the
    examples that survive barely rise while the forgotten ones climb to hundreds of nats)."""
    return _runs(TOFU_SPLITS, [("ngdiff", "gen-guard", 0.1, EXAMPLE_CAP)], seeds=(0, 1, 2))


@_ascent_era
def example_tofu() -> list[Run]:
    """What the README reports for the per-example rule on tofu-synthetic, seeds 0, 1, 2: the
    defaults, the rule with the mean floor (60 and 120 epochs) and the rule with the capped
    objective."""
    specs: list[tuple[str, str, float, dict[str, Any]]] = [
        ("ngdiff", "gen-guard", 0.1, EXAMPLE_FLOOR),
        ("ngdiff", "gen-guard", 0.1, {**EXAMPLE_FLOOR, "epochs": 120}),
    ]
    seed0 = [r for r in screen_final() if r.step == "gen-guard" and r.base == "sgd"]
    return seed0 + _runs(TOFU_SPLITS, specs) + screen_example_seeds() + screen_cap()


EXAMPLE_CHOSEN: dict[str, Any] = EXAMPLE_FLOOR
"""The per-example candidate carried to the held-out sets (after ``screen-example-seeds``)."""


@_ascent_era
def example_heldout() -> list[Run]:
    """The per-example candidate next to the defaults on the held-out sets that are cheap
    (people forget01/05/10, muse-synthetic, digits), seeds 0, 1, 2."""
    sets = ("people/forget01", "people/forget05", "people/forget10", "muse-synthetic", "digits")
    return _runs(sets, [("ngdiff", "gen-guard", 0.1, EXAMPLE_CHOSEN)] + DEFAULTS,
                 seeds=(0, 1, 2))


def tofu_sweep() -> list[Run]:
    """tofu-synthetic forget01/05/10, seed 0, defaults untouched: the fixed-rate sweep of
    NGDiff (SGD: 0.05/0.1/0.2) and NGDiff + AutoLR with the Adam base, next to the defaults
    (the tuned set's counterpart of ``heldout``)."""
    sweep = [("ngdiff", "fixed", lr, {}) for lr in (0.05, 0.1, 0.2)]
    return _runs(TOFU_SPLITS, DEFAULTS + sweep) + _runs(TOFU_SPLITS, ADAM_DEFAULTS, base="adam")


def adam_seeds() -> list[Run]:
    """NGDiff + AutoLR with the Adam base and its defaults, seeds 1 and 2 (seed 0 is in
    ``heldout`` and ``tofu-sweep``), on every data set."""
    return _runs(TOFU_SPLITS + HELDOUT, ADAM_DEFAULTS, seeds=(1, 2), base="adam")


def ascent_seeds() -> list[Run]:
    """The defaults with the paper's forget target (``forget_target="ascent"``), seeds 0, 1,
    2, on the TOFU-layout sets: what the ``"refuse"`` target is compared with."""
    return _runs(TOFU_SPLITS + HELDOUT[:3], [("ngdiff", "gen-guard", 0.1, ASCENT)],
                 seeds=(0, 1, 2))


def muse_seeds() -> list[Run]:
    """muse-synthetic, seeds 0, 1, 2: the fixed-rate sweep of NGDiff (0.05/0.1/0.2) and GDiff-0.5
    at lr 0.05/0.1/0.2 (SGD base), the settings that seed 0 put on or near its frontier, over
    the three seeds that ``seeds`` has for NGDiff + AutoLR."""
    specs: list[tuple[str, str, float, dict[str, Any]]] = [
        (m, "fixed", lr, {}) for m in ("ngdiff", "gdiff-0.5") for lr in (0.05, 0.1, 0.2)
    ]
    return _runs(("muse-synthetic",), specs, seeds=(0, 1, 2))


def sweep_seeds() -> list[Run]:
    """The fixed-rate sweep of NGDiff (SGD: 0.05/0.1/0.2) on seeds 1 and 2 of every data set
    but muse-synthetic (``muse-seeds`` has it), so that AutoLR meets the sweep on the three
    seeds that ``seeds`` has (seed 0 is in ``tofu-sweep`` and ``heldout``)."""
    sweep = [("ngdiff", "fixed", lr, {}) for lr in (0.05, 0.1, 0.2)]
    sets = tuple(d for d in TOFU_SPLITS + HELDOUT if d != "muse-synthetic")
    return _runs(sets, sweep, seeds=(1, 2))


def results() -> list[Run]:
    """Everything the README's Results section reports (the union of the grids above)."""
    seen: dict[str, Run] = {}
    for grid in (tofu_sweep, heldout, baselines, baselines_wide, seeds, adam_seeds,
                 ascent_seeds, muse_seeds, sweep_seeds):
        for run in grid():
            seen.setdefault(run.key, run)
    return list(seen.values())


GRIDS: dict[str, Callable[[], list[Run]]] = {
    "tofu-sweep": tofu_sweep,
    "baselines-wide": baselines_wide,
    "adam-seeds": adam_seeds,
    "ascent-seeds": ascent_seeds,
    "heldout": heldout,
    "baselines": baselines,
    "seeds": seeds,
    "muse-seeds": muse_seeds,
    "sweep-seeds": sweep_seeds,
    "results": results,
    "screen-final": screen_final,
    "screen-example": screen_example,
    "screen-example-seeds": screen_example_seeds,
    "example-heldout": example_heldout,
    "screen-cap": screen_cap,
    "example-tofu": example_tofu,
    "screen-sgd2": screen_sgd2,
    "screen-adam2": screen_adam2,
    "screen-gen": screen_gen,
    "screen-sgd": screen_sgd,
    "screen-adam": screen_adam,
}

"""``fastngd reproduce {tofu,muse,digits}``: the experiments over methods and seeds.

Each seed's results go to ``OUT/seed<S>.json`` (TOFU/MUSE: learning curves to
``seed<S>-curves.json``, TOFU: figures to ``seed<S>-figures/``); ``results.json`` holds the
mean and sample standard deviation over seeds and ``table.txt`` prints them with the columns
of :data:`fastngd.reproduce.tables.SEED_TABLE_KEYS`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastngd.reproduce.tofu import RunSpec
from fastngd.unlearn import UnlearnConfig, get_method

__all__ = ["Experiment", "run_experiment", "select_runs"]

Log = Callable[[str], None]


def select_runs(methods: str | None, autolr: bool | None, lr: float | None,
                default_runs: Sequence[RunSpec]) -> list[RunSpec]:
    """The runs of ``--methods`` (comma-separated; each with and without AutoLR unless
    ``autolr`` is given) or of ``default_runs`` (filtered by ``autolr``), with ``lr`` (default:
    :class:`fastngd.unlearn.UnlearnConfig`'s) as every run's (initial) rate."""
    if not methods:
        runs = [r for r in default_runs if autolr is None or r.autolr == autolr]
        if lr is not None:
            runs = [RunSpec(r.name, r.method, r.autolr, lr, r.options) for r in runs]
        return runs
    out = []
    modes = [autolr] if autolr is not None else [True, False]
    for name in [m.strip() for m in methods.split(",") if m.strip()]:
        method = get_method(name)
        for mode in modes:
            label = method.name + ("+autolr" if mode and len(modes) > 1 else "")
            out.append(RunSpec(label, method.name, mode, lr if lr is not None else
                               UnlearnConfig().lr))
    return out


@dataclass(frozen=True)
class Experiment:
    """Everything ``fastngd reproduce`` was asked to do (see the command's ``--help``)."""

    name: str
    out: Path
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: str | None = None
    autolr: bool | None = None
    lr: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    benchmark: str = "tofu-synthetic"
    data_dir: str | None = None
    forget: str = "forget10"
    forget_class: int = 0
    limit: int | None = None
    jobs: int = 1
    device: str = "cpu"
    dtype: str = "float32"
    cache_dir: str | None = None
    overwrite: bool = False


def _digits_methods(exp: Experiment) -> list[str]:
    """The digits methods of ``--methods`` (default: all of them)."""
    from fastngd.reproduce.digits import DIGITS_METHODS

    return ([m.strip() for m in exp.methods.split(",") if m.strip()] if exp.methods
            else list(DIGITS_METHODS))


def _digits_seed(exp: Experiment, methods: list[str], seed: int) -> dict[str, Any]:
    from fastngd.reproduce.digits import run_digits

    return run_digits(methods, seed=seed, autolr=True if exp.autolr is None else exp.autolr,
                      epochs=exp.settings.get("epochs") or 5, lr=exp.lr or 0.05,
                      forget_class=exp.forget_class, limit=exp.limit,
                      optimizer_options=exp.settings.get("optimizer_options"))


def _lm_seed(exp: Experiment, runs: list[RunSpec], config: UnlearnConfig, seed: int,
             root: Path) -> dict[str, Any]:
    """One seed of the TOFU or MUSE experiment (``runs`` from ``config``); writes its curves
    (and TOFU figures)."""
    from fastngd.models.target import load_target_model
    from fastngd.reproduce.demo import write_figures
    from fastngd.reproduce.io import write_json

    model, tokenizer, source = load_target_model(
        exp.model, benchmark=exp.benchmark, seed=seed, device=exp.device, dtype=exp.dtype,
        cache_dir=exp.cache_dir, data_dir=exp.data_dir)
    if exp.name == "tofu":
        from fastngd.data.loading import tofu_configs
        from fastngd.eval import load_tofu_eval_data
        from fastngd.models.target import is_embedded
        from fastngd.reproduce.tofu import run_tofu

        retain = tofu_configs(exp.forget).retain
        data = load_tofu_eval_data(exp.benchmark, exp.forget, retain_split=retain,
                                   data_dir=exp.data_dir, seed=seed)
        reference = None
        if is_embedded(exp.model) and f"{exp.forget}_perturbed" in data:
            ref_model, ref_tok, _ = load_target_model(
                None, benchmark=exp.benchmark, seed=seed, device=exp.device,
                cache_dir=exp.cache_dir, data_dir=exp.data_dir, split=retain)
            reference = (ref_model, ref_tok)
        res = run_tofu(model, tokenizer, data, runs, forget_split=exp.forget, seed=seed,
                       config=config, jobs=exp.jobs, model_path=source,
                       reference_model=reference)
    else:
        from fastngd.data.loading import load_muse_data
        from fastngd.eval import load_muse_eval_data
        from fastngd.reproduce.muse import run_muse

        material: dict[str, Any] = load_muse_data(exp.benchmark, data_dir=exp.data_dir,
                                                  seed=seed)
        material.update(load_muse_eval_data(exp.benchmark, data_dir=exp.data_dir, seed=seed))
        res = run_muse(model, tokenizer, material, runs, seed=seed, config=config,
                       corpus=exp.benchmark)
    res["model"] = source
    curves = res.pop("curves")
    write_json(root / f"seed{seed}-curves.json", curves)
    if exp.name == "tofu":
        write_figures({**res, "curves": curves}, root / f"seed{seed}-figures")
    return res


def run_experiment(exp: Experiment, log: Log = print) -> dict[str, Any]:
    """Run ``exp`` into ``exp.out`` (must be new or empty; removed again if the first seed
    fails before writing); returns the aggregate written to ``results.json``."""
    from fastngd.reproduce.aggregate import aggregate_seeds, seed_table
    from fastngd.reproduce.io import output_folder, write_json, write_text
    from fastngd.reproduce.tables import SEED_TABLE_KEYS

    config = UnlearnConfig().replace(**exp.settings)
    config.validate()
    methods: list[str] = []
    runs: list[RunSpec] = []
    if exp.name == "digits":
        methods = _digits_methods(exp)
    else:
        from fastngd.reproduce.demo import FULL_RUNS

        runs = select_runs(exp.methods, exp.autolr, exp.lr, FULL_RUNS)
    keys = SEED_TABLE_KEYS[exp.name]
    with output_folder(exp.out, exp.overwrite) as root:
        per_seed = []
        for seed in exp.seeds:
            res = (_digits_seed(exp, methods, seed) if exp.name == "digits"
                   else _lm_seed(exp, runs, config, seed, root))
            write_json(root / f"seed{seed}.json", res)
            per_seed.append(res)
        aggregate = aggregate_seeds(per_seed, [k for k, _ in keys])
        write_json(root / "results.json", aggregate)
        table = seed_table(aggregate, keys)
        write_text(root / "table.txt", table + "\n")
    log(f"\n{exp.name}: mean ± std over seeds {list(exp.seeds)}")
    log(table)
    log(f"\nwrote {root / 'results.json'} and table.txt")
    return aggregate

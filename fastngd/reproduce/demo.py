"""``fastngd demo``: the whole pipeline on the embedded benchmark, in minutes on a CPU.

1. build (or reuse from the cache) the embedded target model of ``tofu-synthetic`` and its
   retain-only reference model (trained on ``retain90``: forget quality compares with it);
2. unlearn ``forget10`` with NGDiff + AutoLR and the key baselines (GDiff c = 0.9/0.5/0.1,
   NPO, LossNorm), plus the AutoLR ablation (NGDiff without, GDiff-0.5 and LossNorm with);
3. evaluate every model with the TOFU protocol (forget quality, model utility and its
   components, membership inference against ``holdout10``, PrivLeak, extraction strength),
   print the NGDiff paper's Table 1 and Table 3 layouts and the TOFU/open-unlearning
   metrics, write ``results.json``, ``curves.json``, ``tables.txt`` and PNG figures.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fastngd.data import tofu_synthetic
from fastngd.reproduce.io import output_folder, write_json, write_text
from fastngd.reproduce.tables import autolr_table, tofu_tables
from fastngd.reproduce.tofu import RunSpec, run_tofu
from fastngd.unlearn import UnlearnConfig

__all__ = ["DEMO_LR", "DEMO_RUNS", "FULL_RUNS", "run_demo", "write_figures"]

DEMO_LR = UnlearnConfig().lr
"""The (initial) learning rate of every demo run: :class:`fastngd.unlearn.UnlearnConfig`'s
(the demo's other settings are that class's defaults too: the ``"refuse"`` forget target
for the cross-entropy methods, at most 60 epochs × 5 steps = 300 steps on forget10, stopping
once the smoothed gap of the forget value to its bound ln V is at most ln 2 after 60 steps
(NPO: once its forget loss has risen by 30 nats), forget batches of 8, retain batches of
32)."""

DEMO_RUNS: tuple[RunSpec, ...] = (
    RunSpec("ngdiff", "ngdiff", True, DEMO_LR),
    RunSpec("gdiff-0.9", "gdiff-0.9", False, DEMO_LR),
    RunSpec("gdiff-0.5", "gdiff-0.5", False, DEMO_LR),
    RunSpec("gdiff-0.1", "gdiff-0.1", False, DEMO_LR),
    RunSpec("npo", "npo", False, DEMO_LR),
    RunSpec("lossnorm", "lossnorm", False, DEMO_LR),
    RunSpec("ngdiff-no-autolr", "ngdiff", False, DEMO_LR),
    RunSpec("lossnorm+autolr", "lossnorm", True, DEMO_LR),
)
"""The demo's runs: the headline method, the baselines, then the AutoLR ablation."""

FULL_RUNS: tuple[RunSpec, ...] = DEMO_RUNS + (
    RunSpec("gdiff-0.5+autolr", "gdiff-0.5", True, DEMO_LR),
    RunSpec("npo+autolr", "npo", True, DEMO_LR),
    RunSpec("simnpo", "simnpo", False, DEMO_LR),
    RunSpec("pcgrad", "pcgrad", False, DEMO_LR),
    RunSpec("imtlg+autolr", "imtlg", True, DEMO_LR),
    RunSpec("mgda+autolr", "mgda", True, DEMO_LR),
)
"""The runs of ``fastngd reproduce tofu``: the demo's and a few more methods."""


def write_figures(results: Mapping[str, Any], out: Path, headline: str = "ngdiff") -> list[Path]:
    """The PNG figures of a TOFU experiment: learning curves, trade-off scatter, AutoLR."""
    from fastngd.plots import plot_autolr, plot_curves, plot_tradeoff

    paths = []
    curves = results.get("curves", {})
    if curves:
        paths.append(plot_curves(curves, out / "curves.png",
                                 title="unlearning curves (forget10, tofu-synthetic)"))
    points: dict[str, tuple[float, float]] = {}
    frontier: list[tuple[float, float, str]] = []
    for name, res in results["methods"].items():
        if res.get("diverged") or res.get("forget_rouge_l_recall") is None:
            continue
        xy = (res["forget_rouge_l_recall"], res["retain_rouge_l_recall"])
        if str(res.get("method", "")).startswith("gdiff") and not res.get("autolr"):
            frontier.append((*xy, f"{res['method']} lr={res.get('lr'):g}"))
        points[name] = xy
    if points:
        base = results["no_unlearn"]
        paths.append(plot_tradeoff(points, out / "tradeoff.png",
                                   frontier=frontier if len(frontier) > 1 else None,
                                   reference=(base["forget_rouge_l_recall"],
                                              base["retain_rouge_l_recall"]),
                                   title="forget vs retain"))
    if headline in curves and curves[headline]["history"]:
        paths.append(plot_autolr(curves[headline]["history"], out / "autolr.png",
                                 title=f"{headline}: GeN learning rate and gradient norms"))
    return paths


def _train_worker(seed: int, cache_dir: str | None, split: str) -> None:
    """Train (into the cache) the embedded tofu-synthetic model of ``split``, one thread."""
    from fastngd.models import get_embedded_model

    torch.set_num_threads(1)
    get_embedded_model("tofu-synthetic", seed=seed, cache_dir=cache_dir, split=split,
                       progress=False)


def _train_in_background(seed: int, cache_dir: str | Path | None, split: str) -> Any:
    """A spawned process training the embedded model of ``split`` while this one trains
    the target (the demo runs one torch thread per process, so both cores work); None when
    that model is already cached."""
    import multiprocessing

    from fastngd.models import default_cache_dir, embedded_model_key

    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if (root / embedded_model_key("tofu-synthetic", seed, split=split)).exists():
        return None
    process = multiprocessing.get_context("spawn").Process(
        target=_train_worker, args=(seed, None if cache_dir is None else str(cache_dir), split),
        daemon=True)
    process.start()
    return process


def _write_demo(folder: Path, results: dict[str, Any], curves: dict[str, Any],
                log: Callable[[str], None]) -> None:
    """Print and write the tables, ``results.json``, ``curves.json`` and the figures."""
    tables = (
        "Table 1 layout: tofu-synthetic forget10\n" + tofu_tables(results)
        + "\n\nTable 3 layout: with and without AutoLR (ROUGE-L recall)\n"
        + autolr_table(results)
    )
    log("")
    log(tables)
    write_json(folder / "results.json", results)
    write_json(folder / "curves.json", curves)
    write_text(folder / "tables.txt", tables + "\n")
    figures = write_figures({**results, "curves": curves}, folder)
    log("")
    log(f"wrote {folder / 'results.json'}, curves.json, tables.txt and "
        f"{', '.join(p.name for p in figures)} in {results['wall_seconds']:.0f} s")


def run_demo(
    out: str | Path,
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    model_path: str | Path | None = None,
    retain_model_path: str | Path | None = None,
    device: str = "cpu",
    runs: Sequence[RunSpec] = DEMO_RUNS,
    unlearn_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    jobs: int = 2,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo into folder ``out`` (refused when it exists and is not empty, unless
    ``overwrite``; removed again when the run fails before writing anything); returns the
    results written to ``out/results.json``.

    ``model_path`` replaces the embedded model by a saved causal LM (any Hugging Face
    folder or id) and ``retain_model_path`` the embedded retain-only reference model (a
    model trained on ``retain90`` only, for forget quality; with ``model_path`` and without
    it, forget quality is left out); ``unlearn_options`` override
    :class:`fastngd.unlearn.UnlearnConfig`'s defaults; ``jobs`` worker processes (one torch
    thread each) share the unlearning runs.
    """
    from fastngd.models.target import load_target_model

    start = time.perf_counter()
    config = UnlearnConfig().replace(**dict(unlearn_options or {}))
    config.validate()
    with output_folder(out, overwrite) as folder:
        background = None
        if model_path is None:
            log("building (or loading) the embedded target model of tofu-synthetic ...")
            if jobs > 1:
                background = _train_in_background(seed, cache_dir, "retain90")
        model, tokenizer, path = load_target_model(
            None if model_path is None else str(model_path), benchmark="tofu-synthetic",
            seed=seed, device=device, cache_dir=cache_dir, progress=progress)
        if background is not None:
            background.join()  # its model is then loaded from the cache
        log(f"target model: {path} ({sum(p.numel() for p in model.parameters()):,} "
            f"parameters, ready in {time.perf_counter() - start:.0f} s)")
        reference, reference_path = None, None
        if model_path is None or retain_model_path is not None:
            log("building (or loading) the retain-only reference model (retain90) ...")
            ref_model, ref_tok, reference_path = load_target_model(
                None if retain_model_path is None else str(retain_model_path),
                benchmark="tofu-synthetic", seed=seed, device=device, cache_dir=cache_dir,
                progress=progress, split="retain90")
            reference = (ref_model, ref_tok)
        model_seconds = time.perf_counter() - start
        results = run_tofu(model, tokenizer, tofu_synthetic(seed), runs,
                           forget_split="forget10", seed=seed, config=config, jobs=jobs,
                           model_path=path, reference_model=reference,
                           progress=progress, log=log)
        curves = results.pop("curves")
        results.update(model=path, reference_model=reference_path, model_seconds=model_seconds,
                       unlearn_options=config.shared_options(),
                       torch_threads=torch.get_num_threads(), jobs=jobs,
                       wall_seconds=time.perf_counter() - start)
        _write_demo(folder, results, curves, log)
    return results

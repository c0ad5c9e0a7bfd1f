"""``fastngd demo``: the whole pipeline on the embedded benchmark, in minutes on a CPU.

1. build (or reuse from the cache) the embedded target model of ``tofu-synthetic``;
2. unlearn ``forget10`` with NGDiff + AutoLR and the key baselines (GDiff c = 0.9/0.5/0.1,
   NPO, LossNorm), plus the AutoLR ablation (NGDiff without, GDiff-0.5 and LossNorm with);
3. evaluate every model with the TOFU protocol, print the NGDiff paper's Table 1 and Table 3
   layouts, write ``results.json``, ``curves.json``, ``tables.txt`` and PNG figures.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fastngd.data import tofu_synthetic
from fastngd.reproduce.defaults import UNLEARN_DEFAULTS
from fastngd.reproduce.io import prepare_out_dir, write_json
from fastngd.reproduce.tables import autolr_table, method_table
from fastngd.reproduce.tofu import RunSpec, run_tofu

__all__ = [
    "DEMO_LR", "DEMO_RUNS", "DEMO_UNLEARN_OPTIONS", "FULL_RUNS", "run_demo", "write_figures",
]

DEMO_UNLEARN_OPTIONS: dict[str, Any] = dict(UNLEARN_DEFAULTS)
"""Settings shared by the demo's runs (:data:`fastngd.reproduce.defaults.UNLEARN_DEFAULTS`:
30 epochs × 5 steps = 150 steps on forget10, forget batches of 8, retain batches of 32)."""

DEMO_LR = 0.05
"""The (initial) learning rate of every demo run."""

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


def run_demo(
    out: str | Path,
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    model_path: str | Path | None = None,
    device: str = "cpu",
    runs: Sequence[RunSpec] = DEMO_RUNS,
    unlearn_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    jobs: int = 2,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo into folder ``out`` (refused when it exists and is not empty, unless
    ``overwrite``); returns the results written to ``out/results.json``.

    ``model_path`` replaces the embedded model by a saved causal LM (any Hugging Face
    folder or id); ``unlearn_options`` override :data:`DEMO_UNLEARN_OPTIONS`; ``jobs``
    worker processes (one torch thread each) share the unlearning runs.
    """
    start = time.perf_counter()
    folder = prepare_out_dir(out, overwrite)
    from fastngd.models import get_embedded_model, load_model

    if model_path is None:
        log("building (or loading) the embedded target model of tofu-synthetic ...")
        model, tokenizer, path = get_embedded_model(
            "tofu-synthetic", seed=seed, cache_dir=cache_dir, device=device, progress=progress
        )
    else:
        model, tokenizer = load_model(str(model_path), dtype="float32", device=device)
        path = Path(str(model_path))
    model_seconds = time.perf_counter() - start
    log(f"target model: {path} ({sum(p.numel() for p in model.parameters()):,} parameters, "
        f"ready in {model_seconds:.0f} s)")
    data = tofu_synthetic(seed)
    options = {**DEMO_UNLEARN_OPTIONS, **dict(unlearn_options or {})}
    results = run_tofu(model, tokenizer, data, runs, forget_split="forget10", seed=seed,
                       unlearn_options=options, jobs=jobs, model_path=str(path),
                       progress=progress, log=log)
    curves = results.pop("curves")
    results["model"] = str(path)
    results["model_seconds"] = model_seconds
    results["unlearn_options"] = options
    results["torch_threads"] = torch.get_num_threads()
    results["jobs"] = jobs
    results["wall_seconds"] = time.perf_counter() - start
    tables = (
        "Table 1 layout: tofu-synthetic forget10\n" + method_table(results)
        + "\n\nTable 3 layout: with and without AutoLR (ROUGE-L recall)\n"
        + autolr_table(results)
    )
    log("")
    log(tables)
    write_json(folder / "results.json", results)
    write_json(folder / "curves.json", curves)
    (folder / "tables.txt").write_text(tables + "\n", encoding="utf-8")
    figures = write_figures({**results, "curves": curves}, folder)
    log("")
    log(f"wrote {folder / 'results.json'}, curves.json, tables.txt and "
        f"{', '.join(p.name for p in figures)} in {results['wall_seconds']:.0f} s")
    return results

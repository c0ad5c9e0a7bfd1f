"""Command-line interface: ``fastngd <command> ...``.

Each command is one ``_cmd_<name>(args) -> int`` function registered by a
``_add_<name>_parser(subparsers)`` function in :func:`_build_parser`. Commands:

* ``demo``: the whole pipeline on the embedded benchmark (minutes on a CPU);
* ``finetune``: train (or fine-tune) a target model on a benchmark;
* ``unlearn``: unlearn a forget split with one method, save the model and its history;
* ``eval``: evaluate a model with the TOFU or MUSE protocol;
* ``reproduce {tofu,muse,digits}``: the experiments over several methods and seeds;
* ``data export``: write a benchmark as JSON Lines.

Errors a user can fix (unknown names, existing output folders, diverging runs) are printed
as one ``fastngd <command>: error: ...`` line with exit status 2 (1 for a diverged run).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_EXAMPLES = """examples:
  fastngd demo --out demo-run                 # the main job, about 10 minutes on 2 CPU cores
  fastngd unlearn --method ngdiff --out run1  # embedded model, tofu-synthetic forget10
  fastngd unlearn --model ./my-model --benchmark tofu --data-dir ./tofu --method npo --no-autolr --out run2
  fastngd eval --model run1/model --out run1/eval.json
  fastngd reproduce tofu --seeds 0 1 2 --out tofu-3seeds
  fastngd reproduce digits --out digits
"""


class _UserError(Exception):
    """An error the user can fix; printed without a traceback."""


def _fail(command: str, exc: BaseException, status: int = 2) -> int:
    print(f"fastngd {command}: error: {exc}", file=sys.stderr)
    return status


# --------------------------------------------------------------------------- data export
def _cmd_data_export(args: argparse.Namespace) -> int:
    """``fastngd data export NAME --out DIR``: write a benchmark as JSON Lines."""
    from fastngd.data.export import export_benchmark

    try:
        paths = export_benchmark(args.name, args.out, seed=args.seed, overwrite=args.overwrite)
    except (ValueError, RuntimeError, FileExistsError, NotADirectoryError) as exc:
        print(f"fastngd data export: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} files under {args.out}")
    return 0


def _add_data_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``data`` and its subcommands."""
    from fastngd.data.registry import BENCHMARKS

    data = subparsers.add_parser("data", help="benchmark data utilities")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    export = data_sub.add_parser("export", help="write a benchmark as JSONL files")
    export.add_argument("name", choices=sorted(BENCHMARKS), help="benchmark name")
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--seed", type=int, default=0, help="seed of synthetic benchmarks")
    export.add_argument("--overwrite", action="store_true", help="replace existing files")
    export.set_defaults(func=_cmd_data_export)


# --------------------------------------------------------------------------- shared helpers
_QA_BENCHMARKS = ("tofu-synthetic", "tofu")
_TEXT_BENCHMARKS = ("muse-synthetic", "muse-news", "muse-books")


def _set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(int(args.threads))


def _load_target(args: argparse.Namespace, seed: int) -> tuple[Any, Any, str]:
    """The model of ``--model`` ("embedded" = the package's trained model of the benchmark)."""
    from fastngd.models import get_embedded_model, load_model

    name = args.model
    if name in (None, "", "embedded"):
        benchmark = args.benchmark
        embedded = {"tofu-synthetic": "tofu-synthetic", "muse-synthetic": "muse-synthetic"}
        if benchmark not in embedded:
            raise _UserError(
                f"the embedded model exists only for {sorted(embedded)}; pass --model with a "
                f"Hugging Face id or folder for benchmark {benchmark!r}"
            )
        model, tokenizer, path = get_embedded_model(
            benchmark, seed=seed, cache_dir=getattr(args, "cache_dir", None), device=args.device
        )
        if args.dtype not in ("float32", "fp32"):
            from fastngd.models import resolve_dtype

            model.to(resolve_dtype(args.dtype))  # type: ignore[arg-type]
        return model, tokenizer, str(path)
    try:
        model, tokenizer = load_model(name, dtype=args.dtype, device=args.device)
    except (OSError, ValueError) as exc:
        raise _UserError(f"cannot load model {name!r}: {exc}") from exc
    return model, tokenizer, name


def _tofu_configs(forget: str) -> list[str]:
    pct = forget.replace("forget", "")
    if not pct.isdigit():
        raise _UserError(f"--forget must look like forget01/forget05/forget10, got {forget!r}")
    return [forget, f"retain{100 - int(pct):02d}", f"{forget}_perturbed", "retain_perturbed",
            "real_authors_perturbed", "world_facts_perturbed"]


def _load_qa_data(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """TOFU-style configs needed to unlearn and evaluate ``--forget`` of ``--benchmark``."""
    from fastngd.data import get_benchmark, load_benchmark

    try:
        bench = get_benchmark(args.benchmark)
    except ValueError as exc:
        raise _UserError(str(exc)) from exc
    data: dict[str, Any] = {}
    for config in _tofu_configs(args.forget):
        if config not in bench.splits:
            if config in (args.forget, _tofu_configs(args.forget)[1]):
                raise _UserError(
                    f"benchmark {args.benchmark!r} has no config {config!r}; valid: "
                    f"{sorted(bench.splits)}"
                )
            continue
        kwargs: dict[str, Any] = {"seed": seed}
        if not bench.synthetic and getattr(args, "data_dir", None):
            kwargs["data_dir"] = args.data_dir
        try:
            data[config] = load_benchmark(args.benchmark, config, **kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            if config in _tofu_configs(args.forget)[:2]:
                raise _UserError(f"cannot load {args.benchmark}/{config}: {exc}") from exc
    return data


def _load_text_data(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Every MUSE config/split of ``--benchmark``."""
    from fastngd.data import get_benchmark, load_benchmark

    bench = get_benchmark(args.benchmark)
    data: dict[str, Any] = {}
    for config, splits in bench.splits.items():
        data[config] = {}
        for split in splits:
            kwargs: dict[str, Any] = {"seed": seed}
            if not bench.synthetic and getattr(args, "data_dir", None):
                kwargs["data_dir"] = args.data_dir
            data[config][split] = load_benchmark(args.benchmark, config, split, **kwargs)
    return data


def _add_model_args(p: argparse.ArgumentParser, benchmarks: Sequence[str]) -> None:
    p.add_argument("--model", default="embedded",
                   help="Hugging Face model id or local folder; 'embedded' (default) builds or "
                        "reuses the package's small model trained on the benchmark")
    p.add_argument("--benchmark", default=benchmarks[0], choices=list(benchmarks),
                   help=f"benchmark (default {benchmarks[0]})")
    p.add_argument("--data-dir", default=None,
                   help="local copy of a hub benchmark (see 'fastngd data export')")
    _add_runtime_args(p)


def _add_runtime_args(
    p: argparse.ArgumentParser, *, dtype: bool = True, threads: int | None = None,
    threads_help: str = "torch CPU threads",
) -> None:
    """--device, --dtype (optional), --cache-dir and --threads, shared by the commands."""
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    if dtype:
        p.add_argument("--dtype", default="float32",
                       help="parameter dtype: float32 (default), bfloat16, float16")
    p.add_argument("--cache-dir", default=None,
                   help="where embedded models are cached (default $FASTNGD_CACHE or "
                        "~/.cache/fastngd)")
    p.add_argument("--threads", type=int, default=threads, help=threads_help)


def _add_unlearn_args(p: argparse.ArgumentParser, *, method_default: str | None) -> None:
    from fastngd.unlearn import method_names

    if method_default is not None:
        p.add_argument("--method", default=method_default,
                       help=f"unlearning method (default {method_default}); one of "
                            f"{', '.join(method_names())}")
    p.add_argument("--autolr", action=argparse.BooleanOptionalAction, default=None,
                   help="GeN automatic learning rate (default: on for ngdiff, off otherwise)")
    p.add_argument("--epochs", type=int, default=None, help="passes over the forget set")
    p.add_argument("--batch-size", type=int, default=None, help="forget examples per step")
    p.add_argument("--lr", type=float, default=None, help="(initial) learning rate")
    p.add_argument("--autolr-every", type=int, default=None, help="GeN refit period (steps)")
    p.add_argument("--autolr-scale", type=float, default=None,
                   help="κ: GeN aims at κ·η* (0 < κ < 2)")


def _unlearn_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for key in ("epochs", "batch_size", "autolr_every", "autolr_scale"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    return out


# --------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    """``fastngd demo``: see :func:`fastngd.reproduce.demo.run_demo`."""
    from fastngd.reproduce.demo import DEMO_RUNS, run_demo

    _set_threads(args)
    runs = DEMO_RUNS
    if args.methods:
        wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
        known = {r.name: r for r in DEMO_RUNS}
        unknown = [m for m in wanted if m not in known]
        if unknown:
            return _fail("demo", ValueError(
                f"unknown demo run(s) {unknown}; valid: {', '.join(known)}"))
        runs = tuple(known[m] for m in wanted)
    options: dict[str, Any] = {}
    if args.epochs is not None:
        options["epochs"] = args.epochs
    try:
        run_demo(args.out, seed=args.seed, cache_dir=args.cache_dir, model_path=args.model,
                 device=args.device, runs=runs, unlearn_options=options,
                 overwrite=args.overwrite, jobs=args.jobs, progress=not args.no_progress)
    except (FileExistsError, NotADirectoryError, ValueError, KeyError) as exc:
        return _fail("demo", exc)
    return 0


def _add_demo_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "demo", help="the main job: unlearn tofu-synthetic forget10 with NGDiff and baselines",
        description="Build (or reuse) the embedded target model, unlearn forget10 of "
                    "tofu-synthetic with NGDiff+AutoLR and the key baselines (GDiff c=0.9/0.5/"
                    "0.1, NPO, LossNorm) plus an AutoLR ablation, evaluate, print tables in "
                    "the layout of the NGDiff paper's Tables 1 and 3 and write results.json, "
                    "curves.json, tables.txt and PNG figures into --out.",
    )
    p.add_argument("--out", default="fastngd-demo", help="output folder (must be new or empty)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, model and unlearning")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.add_argument("--model", default=None, help="use this saved model instead of the embedded one")
    p.add_argument("--methods", default=None,
                   help="comma-separated subset of the demo's runs (default: all)")
    p.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    _add_runtime_args(p, dtype=False, threads=1,
                      threads_help="torch CPU threads (default 1: fastest for this small "
                                   "model, and robust when the CPU is shared)")
    p.add_argument("--jobs", type=int, default=2,
                   help="worker processes sharing the unlearning runs (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)


# --------------------------------------------------------------------------- finetune
def _cmd_finetune(args: argparse.Namespace) -> int:
    """``fastngd finetune``: train the embedded model, or fine-tune ``--model`` on QA."""
    _set_threads(args)
    from fastngd.reproduce.io import prepare_out_dir

    out = Path(args.out)
    try:
        if args.model in (None, "", "embedded"):
            from fastngd.models import train_target_model

            if out.exists() and any(out.iterdir()) and not args.overwrite:
                raise FileExistsError(f"output folder {out} already exists and is not empty; "
                                      "choose another --out or pass --overwrite")
            if out.exists() and args.overwrite:
                import shutil

                shutil.rmtree(out)
            path = train_target_model(args.benchmark, seed=args.seed, out_dir=out,
                                      epochs=args.epochs, progress=True)
            print(f"trained the embedded {args.benchmark} model into {path}")
            return 0
        prepare_out_dir(out, args.overwrite)
        from fastngd.data import QADataset
        from fastngd.models import TrainingRecipe, fit, load_model

        if args.benchmark not in _QA_BENCHMARKS:
            raise _UserError("fine-tuning a given --model is supported on QA benchmarks "
                             f"{list(_QA_BENCHMARKS)}")
        from fastngd.data import load_benchmark

        kwargs: dict[str, Any] = {"seed": args.seed}
        if args.benchmark == "tofu" and args.data_dir:
            kwargs["data_dir"] = args.data_dir
        rows = load_benchmark(args.benchmark, "full", **kwargs)
        model, tokenizer = load_model(args.model, dtype=args.dtype, device=args.device)
        recipe = TrainingRecipe(epochs=args.epochs or 5, lr=args.lr or 1e-5,
                                batch_size=args.batch_size or 16)
        loss = fit(model, QADataset(rows, tokenizer, recipe.max_length),  # type: ignore[arg-type]
                   tokenizer, recipe, seed=args.seed)  # type: ignore[arg-type]
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        print(f"fine-tuned {args.model} on {args.benchmark}/full (final loss {loss:.4f}) -> {out}")
    except (_UserError, FileExistsError, NotADirectoryError, ValueError, OSError) as exc:
        return _fail("finetune", exc)
    return 0


def _add_finetune_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "finetune", help="train the target model that will later unlearn",
        description="With --model embedded (default): train the package's small Llama model "
                    "from scratch on a synthetic benchmark. With a Hugging Face id or folder: "
                    "fine-tune it on the benchmark's 'full' QA set.",
    )
    _add_model_args(p, ("tofu-synthetic", "muse-synthetic", "tofu"))
    p.add_argument("--out", required=True, help="folder of the trained model")
    p.add_argument("--seed", type=int, default=0, help="seed of data and training")
    p.add_argument("--epochs", type=int, default=None, help="training epochs")
    p.add_argument("--lr", type=float, default=None, help="learning rate (given --model)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (given --model)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=_cmd_finetune)


# --------------------------------------------------------------------------- unlearn
def _method_default_lr(method: str, autolr: bool) -> float:
    from fastngd.reproduce.defaults import default_lr

    return default_lr(method, autolr)


def _init_torchrun(args: argparse.Namespace) -> tuple[int, int, bool]:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) join the process group:
    gloo on CPU, nccl on CUDA (each rank then uses ``cuda:LOCAL_RANK``, ``args.device`` is
    updated). Returns ``(world size, rank, whether this call created the group)``."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 1, 0, False
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise _UserError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    cuda = str(args.device).startswith("cuda")
    if cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        args.device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if cuda else "gloo")
    if dist.get_world_size() != world:
        raise _UserError(f"WORLD_SIZE={world} but the process group has "
                         f"{dist.get_world_size()} ranks")
    return world, dist.get_rank(), created


def _rank0_first(world: int, rank: int, action: Any) -> Any:
    """Run ``action()`` on rank 0, then on the other ranks (so that a cache or folder it
    creates is made once); an error on rank 0 is raised on every rank as a _UserError
    instead of leaving the others waiting."""
    if world == 1:
        return action()
    import torch.distributed as dist

    result, error = None, None
    if rank == 0:
        try:
            result = action()
        except Exception as exc:  # noqa: BLE001 - re-raised below on every rank
            error = exc
    message = [None if error is None else str(error)]
    dist.broadcast_object_list(message, src=0)
    if error is not None:
        raise error
    if message[0] is not None:
        raise _UserError(f"rank 0 failed: {message[0]}")
    return action() if rank != 0 else result


def _cmd_unlearn(args: argparse.Namespace) -> int:
    """``fastngd unlearn``: one method, one or more seeds; saves model, history, summary.

    Under ``torchrun`` every rank loads the model and the data, wraps the model in
    ``DistributedDataParallel`` and processes its share of every batch; rank 0 alone writes
    the output folder and prints.
    """
    _set_threads(args)
    from functools import partial

    from fastngd.data import QADataset, TextDataset
    from fastngd.reproduce.defaults import UNLEARN_DEFAULTS
    from fastngd.reproduce.io import prepare_out_dir, write_json
    from fastngd.unlearn import UnlearningDiverged, get_method, unlearn

    try:
        method = get_method(args.method)
    except ValueError as exc:
        return _fail("unlearn", exc)
    autolr = args.autolr if args.autolr is not None else method.name == "ngdiff"
    lr = args.lr if args.lr is not None else _method_default_lr(method.name, autolr)
    options = {**UNLEARN_DEFAULTS, **_unlearn_overrides(args)}
    root = Path(args.out)
    world, rank, created = 1, 0, False
    try:
        world, rank, created = _init_torchrun(args)
        if not args.resume:
            _rank0_first(world, rank,
                         lambda: prepare_out_dir(root, args.overwrite) if rank == 0 else None)
        for seed in args.seeds:
            out = root / f"seed{seed}" if len(args.seeds) > 1 else root
            model, tokenizer, source = _rank0_first(world, rank,
                                                    partial(_load_target, args, seed))
            forget: Any
            retain: Any
            if args.benchmark in _QA_BENCHMARKS:
                data = _rank0_first(world, rank, partial(_load_qa_data, args, seed))
                configs = _tofu_configs(args.forget)
                forget = QADataset(data[configs[0]], tokenizer, 128)
                retain = QADataset(data[configs[1]], tokenizer, 128)
            else:
                data = _rank0_first(world, rank, partial(_load_text_data, args, seed))
                forget = TextDataset(data["raw"]["forget"], tokenizer, 256)
                retain = TextDataset(data["raw"]["retain1"] + data["raw"].get("retain2", []),
                                     tokenizer, 256)
            if rank == 0:
                print(f"unlearning {args.benchmark}/{args.forget if args.benchmark in _QA_BENCHMARKS else 'forget'} "
                      f"from {source} with {method.name} (autolr={autolr}, lr={lr:g}, seed={seed}"
                      f"{f', {world} ranks' if world > 1 else ''})")
            trained = model
            if world > 1:
                from torch.nn.parallel import DistributedDataParallel

                device_ids = [model.device.index] if str(args.device).startswith("cuda") else None
                trained = DistributedDataParallel(model, device_ids=device_ids)
            result = unlearn(trained, forget, retain, method.name, autolr=autolr, lr=lr,
                             seed=seed, checkpoint_dir=out / "checkpoint", resume=args.resume,
                             progress=rank == 0, **options)
            if rank != 0:
                continue
            model.save_pretrained(out / "model")
            tokenizer.save_pretrained(out / "model")
            write_json(out / "history.json", result.history)
            last = result.history[-1] if result.history else {}
            summary = {"method": method.name, "autolr": autolr, "lr": lr, "seed": seed,
                       "model": source, "benchmark": args.benchmark, "steps": result.steps,
                       "final_lr": result.final_lr, "final_loss_retain": last.get("loss_retain"),
                       "final_loss_forget": last.get("loss_forget"),
                       "wall_seconds": result.wall_seconds, "options": options}
            write_json(out / "summary.json", summary)
            print(f"  {result.steps} steps in {result.wall_seconds:.0f} s; retain loss "
                  f"{last.get('loss_retain', float('nan')):.4f}, forget objective "
                  f"{last.get('loss_forget', float('nan')):.4f}, final lr {result.final_lr:.4g}")
            print(f"  saved {out / 'model'}, history.json, summary.json "
                  f"(evaluate with: fastngd eval --model {out / 'model'} --benchmark "
                  f"{args.benchmark})")
    except UnlearningDiverged as exc:
        return _fail("unlearn", exc, status=1)
    except (_UserError, FileExistsError, NotADirectoryError, ValueError, KeyError) as exc:
        return _fail("unlearn", exc)
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.barrier()  # the other ranks wait until rank 0 has written its files
            if created:
                dist.destroy_process_group()
    return 0


def _add_unlearn_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "unlearn", help="unlearn a forget split with one method",
        description="Unlearn the forget split of a benchmark from a model. Each epoch is one "
                    "pass over the forget set; every forget batch is paired with a random "
                    "retain batch. Writes OUT/model (save_pretrained), history.json (per-step "
                    "losses, norms, learning rate), summary.json and a whole-run checkpoint "
                    "(OUT/checkpoint) from which an interrupted run continues with --resume.",
    )
    _add_model_args(p, ("tofu-synthetic", "tofu", "muse-synthetic", "muse-news", "muse-books"))
    p.add_argument("--forget", default="forget10", help="forget split (TOFU: forget01/05/10)")
    _add_unlearn_args(p, method_default="ngdiff")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="one run per seed (data order; synthetic data and embedded model too)")
    p.add_argument("--out", required=True, help="output folder (must be new or empty)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.add_argument("--resume", action="store_true",
                   help="continue the run checkpointed in --out (same settings required)")
    p.set_defaults(func=_cmd_unlearn)


# --------------------------------------------------------------------------- eval
def _cmd_eval(args: argparse.Namespace) -> int:
    """``fastngd eval``: the TOFU (QA benchmarks) or MUSE protocol on one model."""
    _set_threads(args)
    from fastngd.reproduce.io import write_json

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.overwrite:
        return _fail("eval", FileExistsError(f"{out} already exists; pass --overwrite"))
    try:
        model, tokenizer, source = _load_target(args, args.seed)
        if args.benchmark in _QA_BENCHMARKS:
            from fastngd.eval import evaluate_tofu
            from fastngd.reproduce.tables import method_table
            from fastngd.reproduce.tofu import summarise_tofu, tofu_eval_data

            data = tofu_eval_data(_load_qa_data(args, args.seed), args.forget)
            result = evaluate_tofu(model, tokenizer, data, forget_split=args.forget,
                                   max_new_tokens=args.max_new_tokens,
                                   max_examples=args.max_examples)
            summary = summarise_tofu(result)
            print(method_table({"no_unlearn": summary, "methods": {}}).replace(
                "no unlearning", Path(source).name or source))
        else:
            from fastngd.eval import evaluate_muse

            data = _load_text_data(args, args.seed)
            result = evaluate_muse(model, tokenizer, data, max_examples=args.max_examples)
            summary = result["aggregate"]
            for key, value in summary.items():
                print(f"{key:>16}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    except (_UserError, ValueError, KeyError) as exc:
        return _fail("eval", exc)
    if out is not None:
        write_json(out, {"model": source, "benchmark": args.benchmark, "summary": summary,
                         "result": result})
        print(f"wrote {out}")
    return 0


def _add_eval_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "eval", help="evaluate a model (TOFU or MUSE protocol)",
        description="TOFU benchmarks: ROUGE-L recall, probability, truth ratio and fact "
                    "accuracy on the forget split and the retain-type splits, model utility "
                    "and the NGDiff paper's Verbmem/Knowmem/Utility. MUSE benchmarks: VerbMem, "
                    "KnowMem and PrivLeak.",
    )
    _add_model_args(p, ("tofu-synthetic", "tofu", "muse-synthetic", "muse-news", "muse-books"))
    p.add_argument("--forget", default="forget10", help="forget split (TOFU)")
    p.add_argument("--seed", type=int, default=0, help="seed of synthetic data")
    p.add_argument("--max-new-tokens", type=int, default=200, help="generation length (TOFU)")
    p.add_argument("--max-examples", type=int, default=None, help="cut every split")
    p.add_argument("--out", default=None, help="write the full result to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=_cmd_eval)


# --------------------------------------------------------------------------- reproduce
def _runs_from_args(args: argparse.Namespace, default_runs: Sequence[Any]) -> list[Any]:
    from fastngd.reproduce.tofu import RunSpec
    from fastngd.unlearn import get_method

    if not args.methods:
        runs = list(default_runs)
        if args.autolr is not None:
            runs = [r for r in runs if r.autolr == args.autolr]
        if args.lr is not None:
            runs = [RunSpec(r.name, r.method, r.autolr, args.lr, r.options) for r in runs]
        return runs
    runs = []
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        method = get_method(name)
        modes = [args.autolr] if args.autolr is not None else [True, False]
        for autolr in modes:
            lr = args.lr if args.lr is not None else _method_default_lr(method.name, autolr)
            label = method.name + ("+autolr" if autolr and len(modes) > 1 else "")
            runs.append(RunSpec(label, method.name, autolr, lr))
    return runs


def _cmd_reproduce(args: argparse.Namespace) -> int:
    """``fastngd reproduce {tofu,muse,digits}`` over ``--seeds``."""
    _set_threads(args)
    from fastngd.reproduce.aggregate import aggregate_seeds, seed_table
    from fastngd.reproduce.io import prepare_out_dir, write_json

    try:
        root = prepare_out_dir(args.out, args.overwrite)
        per_seed = []
        if args.experiment == "digits":
            from fastngd.reproduce.digits import DIGITS_METHODS, run_digits

            methods = ([m.strip() for m in args.methods.split(",") if m.strip()]
                       if args.methods else list(DIGITS_METHODS))
            autolr = True if args.autolr is None else args.autolr
            for seed in args.seeds:
                res = run_digits(methods, seed=seed, autolr=autolr,
                                 epochs=args.epochs or 5, lr=args.lr or 0.05,
                                 forget_class=args.forget_class, limit=args.limit)
                write_json(root / f"seed{seed}.json", res)
                per_seed.append(res)
            keys = [("train_forget_accuracy", "forget acc"), ("train_retain_accuracy", "retain acc"),
                    ("test_forget_accuracy", "test forget"), ("test_retain_accuracy", "test retain")]
        else:
            from fastngd.reproduce.defaults import UNLEARN_DEFAULTS
            from fastngd.reproduce.demo import FULL_RUNS, write_figures

            runs = _runs_from_args(args, FULL_RUNS)
            options = {**UNLEARN_DEFAULTS, **_unlearn_overrides(args)}
            for seed in args.seeds:
                model, tokenizer, source = _load_target(args, seed)
                if args.experiment == "tofu":
                    from fastngd.reproduce.tofu import run_tofu

                    res = run_tofu(model, tokenizer, _load_qa_data(args, seed), runs,
                                   forget_split=args.forget, seed=seed, unlearn_options=options,
                                   jobs=args.jobs, model_path=source)
                else:
                    from fastngd.reproduce.muse import run_muse

                    res = run_muse(model, tokenizer, _load_text_data(args, seed), runs, seed=seed,
                                   unlearn_options=options)
                res["model"] = source
                curves = res.pop("curves")
                write_json(root / f"seed{seed}.json", res)
                write_json(root / f"seed{seed}-curves.json", curves)
                if args.experiment == "tofu":
                    write_figures({**res, "curves": curves}, root / f"seed{seed}-figures")
                per_seed.append(res)
            if args.experiment == "tofu":
                keys = [("forget_rouge_l_recall", "forget R-L↓"),
                        ("retain_rouge_l_recall", "retain R-L↑"), ("verbmem", "Verbmem↓"),
                        ("truth_ratio", "TruthRatio"), ("forget_fact_accuracy", "FactAcc F↓"),
                        ("retain_fact_accuracy", "FactAcc R↑"), ("model_utility", "ModelUtil↑")]
            else:
                keys = [("verbmem_forget", "VerbMem F↓"), ("knowmem_forget", "KnowMem F↓"),
                        ("knowmem_retain", "KnowMem R↑"), ("privleak", "PrivLeak")]
        aggregate = aggregate_seeds(per_seed, [k for k, _ in keys])
        write_json(root / "results.json", aggregate)
        table = seed_table(aggregate, keys)
        (root / "table.txt").write_text(table + "\n", encoding="utf-8")
        print(f"\n{args.experiment}: mean ± std over seeds {list(args.seeds)}")
        print(table)
        print(f"\nwrote {root / 'results.json'} and table.txt")
    except (_UserError, FileExistsError, NotADirectoryError, ValueError, KeyError) as exc:
        return _fail(f"reproduce {args.experiment}", exc)
    return 0


def _add_reproduce_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "reproduce", help="run the experiments over several methods and seeds",
        description="tofu: unlearn a TOFU forget split with every method; muse: unlearn the "
                    "MUSE forget texts; digits: forget one class of scikit-learn's digits "
                    "with a small network. Writes per-seed JSON, results.json (mean, std) and "
                    "table.txt into --out.",
    )
    p.add_argument("experiment", choices=["tofu", "muse", "digits"], help="which experiment")
    p.add_argument("--model", default="embedded", help="HF id or folder (tofu, muse)")
    p.add_argument("--benchmark", default=None,
                   help="tofu: tofu-synthetic (default) or tofu; muse: muse-synthetic "
                        "(default), muse-news or muse-books")
    p.add_argument("--data-dir", default=None, help="local copy of a hub benchmark")
    p.add_argument("--forget", default="forget10", help="forget split (tofu)")
    p.add_argument("--forget-class", type=int, default=0, help="digit to forget (digits)")
    p.add_argument("--limit", type=int, default=None, help="use only this many digits (digits)")
    p.add_argument("--methods", default=None,
                   help="comma-separated methods (default: the demo's runs; digits: all)")
    _add_unlearn_args(p, method_default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    _add_runtime_args(p)
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes sharing the runs of one seed (tofu)")
    p.add_argument("--out", required=True, help="output folder (must be new or empty)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.set_defaults(func=_cmd_reproduce)


def _build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="fastngd",
        description="Machine unlearning with normalized gradient difference (NGDiff), GeN "
                    "automatic learning rate and the classic baselines.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_demo_parser(subparsers)
    _add_finetune_parser(subparsers)
    _add_unlearn_parser(subparsers)
    _add_eval_parser(subparsers)
    _add_reproduce_parser(subparsers)
    _add_data_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if getattr(args, "command", None) == "reproduce" and args.benchmark is None:
        args.benchmark = "muse-synthetic" if args.experiment == "muse" else "tofu-synthetic"
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

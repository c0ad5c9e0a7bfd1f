"""Command-line interface: ``fastngd <command> ...``. It parses and dispatches; the work is
done by library functions:

* ``demo`` → :func:`fastngd.reproduce.demo.run_demo` (the whole pipeline, minutes on a CPU);
* ``finetune`` → :func:`fastngd.models.finetune.finetune`;
* ``unlearn`` → :func:`fastngd.unlearn.job.run_unlearn_job` (settings:
  :class:`fastngd.unlearn.UnlearnConfig`, whose defaults the help shows);
* ``eval`` → :func:`fastngd.reproduce.evaluation.evaluate_model`;
* ``reproduce {tofu,muse,digits}`` → :func:`fastngd.reproduce.experiment.run_experiment`;
* ``data export`` → :func:`fastngd.data.export_benchmark`.

Errors are handled once, in :func:`main`: an error the user can fix is printed as one line
``fastngd <command>: error: <message>`` and the exit status is 2 for usage errors (bad flags
or flag combinations, an output folder that exists) and 1 for runtime and input errors
(unreadable files, a diverged run, a full disk). ``--debug`` adds the traceback. Any other
exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

_EXAMPLES = """examples:
  fastngd demo --out demo-run                 # the main job, 5-8 minutes on 2 CPU cores
  fastngd unlearn --method ngdiff --out run1  # embedded model, tofu-synthetic forget10
  fastngd unlearn --model ./my-model --benchmark tofu --data-dir ./tofu --method npo --no-autolr --out run2
  fastngd unlearn --eval-every 10 --keep-best forget_rouge_l_recall:min --lora-rank 8 --out run3
  fastngd eval --model run1/model --out run1/eval.json
  fastngd reproduce tofu --seeds 0 1 2 --out tofu-3seeds
  fastngd reproduce digits --out digits
"""

ALL_BENCHMARKS = ("tofu-synthetic", "tofu", "muse-synthetic", "muse-news", "muse-books")


def _debug_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")
    return parent


def _refuse(args: argparse.Namespace, flags: Sequence[str], why: str) -> None:
    """UsageError when one of ``flags`` (attribute names, default None) was given."""
    from fastngd.errors import UsageError

    given = ["--" + name.replace("_", "-") for name in flags
             if getattr(args, name, None) is not None and getattr(args, name) is not False]
    if given:
        raise UsageError(f"{' and '.join(given)} {'does' if len(given) == 1 else 'do'} not "
                         f"apply {why}")


def _set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(int(args.threads))


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


def _add_model_args(p: argparse.ArgumentParser, benchmarks: Sequence[str],
                    benchmark_help: str = "") -> None:
    p.add_argument("--model", default="embedded",
                   help="Hugging Face model id or local folder; 'embedded' (default) builds or "
                        "reuses the package's small model trained on the benchmark")
    p.add_argument("--benchmark", default=benchmarks[0], choices=list(benchmarks),
                   help=benchmark_help or f"benchmark (default {benchmarks[0]})")
    p.add_argument("--data-dir", default=None,
                   help="local files of a hub benchmark (tofu, muse-news, muse-books; see "
                        "'fastngd data export'); not for the built-in *-synthetic ones")
    _add_runtime_args(p)


def _add_unlearn_args(p: argparse.ArgumentParser, *, method: bool) -> None:
    """The unlearning settings; their defaults are :class:`fastngd.unlearn.UnlearnConfig`'s."""
    from fastngd.unlearn import FORGET_TARGETS, UnlearnConfig, method_names

    d = UnlearnConfig()
    if method:
        p.add_argument("--method", default=d.method,
                       help=f"unlearning method (default {d.method}); one of "
                            f"{', '.join(method_names())}")
    p.add_argument("--autolr", action=argparse.BooleanOptionalAction, default=None,
                   help="GeN automatic learning rate (default: on for ngdiff, off otherwise)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"passes over the forget set (default {d.epochs})")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"forget examples per step (default {d.batch_size})")
    p.add_argument("--lr", type=float, default=None,
                   help=f"(initial) learning rate (default {d.lr:g})")
    p.add_argument("--step-size", default=None, choices=["gen", "gen-guard"],
                   help=f"AutoLR step-size rule: the paper's GeN, or GeN with a retain-loss "
                        f"safeguard and a trust region (default {d.step_size})")
    p.add_argument("--autolr-every", type=int, default=None,
                   help=f"GeN refit period in steps (default {d.autolr_every})")
    p.add_argument("--autolr-scale", type=float, default=None,
                   help=f"κ: GeN aims at κ·η*, 0 < κ < 2 (default {d.autolr_scale:g})")
    p.add_argument("--forget-target", default=None, choices=list(FORGET_TARGETS),
                   help=f"for the cross-entropy methods: refuse (bounded ascent, each forget "
                        f"token's loss capped at ln V, plus the empty answer as a target, so "
                        f"a forget question is answered with nothing) or ascent (the paper's "
                        f"unbounded gradient ascent) (default {d.forget_target})")
    ex = "off" if d.stop_example_rise is None else f"{d.stop_example_rise:g}"
    nats_flags = {
        "--stop-gap": f"with --forget-target refuse: stop once the smoothed gap between the "
                      f"forget value and its bound ln V, and the gap of every forget example, "
                      f"is at most NATS (default {d.stop_gap:.3g} = ln 2); off: run every epoch",
        "--stop-rise": f"with --forget-target ascent, and for npo/simnpo: stop once the "
                       f"smoothed forget loss has risen by NATS (default {d.stop_rise:g}); "
                       f"off: run every epoch",
        "--stop-example-rise": f"stop only once the --stop-quantile quantile of the forget "
                               f"examples' loss rises (each example's token-mean loss, latest "
                               f"minus first seen) has reached NATS; with --stop-rise the mean "
                               f"rule must fire too (default {ex})",
    }
    for flag, text in nats_flags.items():
        p.add_argument(flag, type=_nats_or_off, default=None, metavar="NATS|off", help=text)
    p.add_argument("--stop-min-steps", type=int, default=None,
                   help=f"the stopping rule never stops before this many steps "
                        f"(default {d.stop_min_steps})")
    p.add_argument("--stop-quantile", type=float, default=None, metavar="Q",
                   help=f"the quantile of --stop-example-rise, in [0, 1); 0: every example "
                        f"(default {d.stop_quantile:g})")
    p.add_argument("--retain-check", type=_count_or_off, default=None, metavar="N|off",
                   help=f"when the stopping rule fires, check up to N retain examples the "
                        f"model reproduced before unlearning and repair those the run broke "
                        f"(default {d.retain_check}); off: stop at once")
    p.add_argument("--retain-repair-steps", type=int, default=None,
                   help=f"steps of each repair round (default {d.retain_repair_steps})")
    p.add_argument("--retain-repair-rounds", type=int, default=None,
                   help=f"the most repair rounds before stopping anyway "
                        f"(default {d.retain_repair_rounds})")
    _add_base_args(p)


def _or_off(kind: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)``, or ``"off"``."""
    def parse(text: str) -> Any:
        if text.strip().lower() == "off":
            return "off"
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} or 'off', got {text!r}")

    return parse


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (``--max-examples``,
    ``--max-new-tokens``); 0 or less is refused rather than taken as "the default"."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _check_data(benchmark: str, data_dir: str | None,
                *trained: tuple[str | None, str]) -> None:
    """Before any work: refuse a ``--data-dir`` that does not fit ``--benchmark``
    (:func:`fastngd.data.loading.check_data_dir`) and, for each ``(model, split)`` of
    ``trained`` whose model is the embedded one, a folder without the files that model
    trains on (:func:`fastngd.data.loading.check_training_files`)."""
    from fastngd.data.loading import check_data_dir, check_training_files
    from fastngd.models.target import is_embedded

    check_data_dir(benchmark, data_dir)
    for model, split in trained:
        if is_embedded(model):
            check_training_files(benchmark, data_dir, split)


_nats_or_off = _or_off(float, "a number of nats")
"""``--stop-gap``, ``--stop-rise``, ``--stop-example-rise``: a number of nats, or ``off``."""
_count_or_off = _or_off(int, "a number of examples")
"""``--retain-check``: a number of examples, or ``off``."""


def _forget_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``forget_target``, the stopping settings (``stop_gap``, ``stop_rise``,
    ``stop_min_steps``, ``stop_example_rise``, ``stop_quantile``) and the retain check's
    (``retain_check``, ``retain_repair_steps``, ``retain_repair_rounds``) of the flags that
    were given (``off`` → None)."""
    out = _given(forget_target=args.forget_target, stop_min_steps=args.stop_min_steps,
                 stop_quantile=args.stop_quantile,
                 retain_repair_steps=args.retain_repair_steps,
                 retain_repair_rounds=args.retain_repair_rounds)
    for key in ("stop_gap", "stop_rise", "stop_example_rise", "retain_check"):
        value = getattr(args, key)
        if value is not None:
            out[key] = None if value == "off" else value
    return out


def _add_base_args(p: argparse.ArgumentParser) -> None:
    """The base optimizer under the direction and its hyper-parameters (each base's own
    defaults, torch's, when a flag is not given)."""
    from fastngd.bases import BASES

    p.add_argument("--base", default=None, choices=list(BASES),
                   help="base optimizer applied to the combined direction d (default sgd: "
                        "θ ← θ − η·d; adam/adamw: the NGDiff paper's setup)")
    p.add_argument("--momentum", type=float, default=None,
                   help="momentum of --base momentum (default 0.9)")
    p.add_argument("--betas", type=float, nargs=2, default=None, metavar=("B1", "B2"),
                   help="Adam's betas of --base adam/adamw (default 0.9 0.999)")
    p.add_argument("--eps", type=float, default=None,
                   help="Adam's epsilon of --base adam/adamw (default 1e-8)")
    p.add_argument("--weight-decay", type=float, default=None,
                   help="weight decay (default 0; adamw: 0.01, decoupled)")


def _optimizer_options(args: argparse.Namespace) -> dict[str, Any]:
    """``UnlearnConfig.optimizer_options`` of the base flags (checked: a flag the base does
    not have, such as --momentum with --base adam, is a UsageError)."""
    from fastngd.unlearn import base_options

    return base_options(args.base, momentum=args.momentum, betas=args.betas, eps=args.eps,
                        weight_decay=args.weight_decay)


def _config_from_args(args: argparse.Namespace, **extra: Any) -> Any:
    """The :class:`fastngd.unlearn.UnlearnConfig` of the unlearning flags (unset flags keep
    the defaults; AutoLR defaults to on for ngdiff only)."""
    from fastngd.unlearn import UnlearnConfig, get_method

    method = get_method(getattr(args, "method", None) or UnlearnConfig().method).name
    autolr = args.autolr if args.autolr is not None else method == "ngdiff"
    given = _given(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                   step_size=args.step_size, autolr_every=args.autolr_every,
                   autolr_scale=args.autolr_scale, **extra)
    given.update(_forget_settings(args))  # after _given: "off" is an explicit None
    options = _optimizer_options(args)
    given.setdefault("lr", _base_lr(options))
    config = UnlearnConfig().replace(method=method, autolr=autolr, optimizer_options=options,
                                     **given)
    config.validate()
    return config


def _base_lr(options: dict[str, Any]) -> float:
    """The default rate of the base in ``options`` (:data:`fastngd.unlearn.BASE_LR`), used
    where ``--lr`` is not given."""
    from fastngd.unlearn import BASE_LR

    return BASE_LR[options.get("base", "sgd")]


def _given(**values: Any) -> dict[str, Any]:
    """The flags that were given (unset ones are None and keep their defaults)."""
    return {k: v for k, v in values.items() if v is not None}


# --------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    """``fastngd demo``: see :func:`fastngd.reproduce.demo.run_demo`."""
    from fastngd.errors import UsageError
    from fastngd.reproduce.demo import DEMO_RUNS, run_demo

    _set_threads(args)
    runs = DEMO_RUNS
    if args.methods:
        known = {r.name: r for r in DEMO_RUNS}
        wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in known]
        if unknown:
            raise UsageError(f"unknown demo run(s) {unknown}; valid: {', '.join(known)}")
        runs = tuple(known[m] for m in wanted)
    if args.retain_model is not None and args.model is None:
        raise UsageError("--retain-model goes with --model (the embedded target model has its "
                         "own retain-only model)")
    run_demo(args.out, seed=args.seed, cache_dir=args.cache_dir, model_path=args.model,
             retain_model_path=args.retain_model, device=args.device, runs=runs, unlearn_options=_given(epochs=args.epochs),
             overwrite=args.overwrite, jobs=args.jobs, progress=not args.no_progress)
    return 0


def _add_demo_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo", parents=[parent],
        help="the main job: unlearn tofu-synthetic forget10 with NGDiff and baselines "
             "(5-8 minutes on 2 CPU cores from an empty cache)",
        description="Build (or reuse) the embedded target model, unlearn forget10 of "
                    "tofu-synthetic with NGDiff+AutoLR and the key baselines (GDiff c=0.9/0.5/"
                    "0.1, NPO, LossNorm) plus an AutoLR ablation, evaluate, print tables in "
                    "the layout of the NGDiff paper's Tables 1 and 3 and write results.json, "
                    "curves.json, tables.txt and PNG figures into --out.",
    )
    p.add_argument("--out", default="fastngd-demo", help="output folder (must be new or empty)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, model and unlearning")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out (replacing only the demo's files)")
    p.add_argument("--model", default=None, help="use this saved model instead of the embedded one")
    p.add_argument("--retain-model", default=None, metavar="DIR",
                   help="with --model: its retain-only reference model (trained on retain90), "
                        "for forget quality (default: left out with --model; the embedded "
                        "model's is trained and cached)")
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
    from fastngd.models.finetune import check_finetune_args, finetune
    from fastngd.reproduce.io import output_folder

    _set_threads(args)
    check_finetune_args(args.model, args.benchmark, split=args.split, data_dir=args.data_dir)
    _check_data(args.benchmark, args.data_dir, (args.model, args.split))
    with output_folder(args.out, args.overwrite) as out:  # removed again if refused
        finetune(out, model=args.model, benchmark=args.benchmark, seed=args.seed,
                 split=args.split, data_dir=args.data_dir, epochs=args.epochs, lr=args.lr,
                 batch_size=args.batch_size, device=args.device, dtype=args.dtype,
                 cache_dir=args.cache_dir)
    return 0


def _add_finetune_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "finetune", parents=[parent], help="train the target model that will later unlearn",
        description="With --model embedded (default): train the package's small Llama model "
                    "from scratch (its own recipe: 30 epochs, lr 1e-3, batch 32 on TOFU-style "
                    "QA; 60 epochs, lr 2e-3, batch 16 on MUSE-style texts) on tofu-synthetic, "
                    "muse-synthetic, or your files in the layout of tofu, muse-news or "
                    "muse-books (--data-dir; the word tokenizer is built from them); the model "
                    "is cached by the content of its data and copied into --out. With a "
                    "Hugging Face id or folder: fine-tune it on a QA split of tofu-synthetic "
                    "or tofu (5 epochs, lr 1e-5, batch 16). --split retain90 (or retain95, "
                    "retain99; MUSE layout: retain) trains the retain-only reference model "
                    "that forget quality compares with.",
    )
    _add_model_args(p, ("tofu-synthetic", "muse-synthetic", "tofu", "muse-news", "muse-books"),
                    "tofu-synthetic (default), muse-synthetic, or tofu / muse-news / "
                    "muse-books with --data-dir for the embedded model; tofu-synthetic or "
                    "tofu with --model")
    p.add_argument("--split", default="full",
                   help="training data: full (default, the target model) or the retain split "
                        "of a forget split (retain90 for forget10...; MUSE layout: retain), "
                        "the retain-only reference model of forget quality")
    p.add_argument("--out", required=True, help="folder of the trained model")
    p.add_argument("--seed", type=int, default=0, help="seed of data and training")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: the model's recipe)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: 1e-3 / 2e-3 embedded, 1e-5 with --model)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size (default: 32 / 16 embedded, 16 with --model)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out (replacing only the model's own files)")
    p.set_defaults(func=_cmd_finetune)


# --------------------------------------------------------------------------- unlearn
def _cmd_unlearn(args: argparse.Namespace) -> int:
    """``fastngd unlearn``: one method, one or more seeds; see
    :func:`fastngd.unlearn.job.run_unlearn_job`."""
    from fastngd.data.loading import QA_BENCHMARKS, TRAINED_QA
    from fastngd.unlearn.job import UnlearnJob, run_unlearn_job

    _set_threads(args)
    if args.benchmark not in QA_BENCHMARKS:
        qa = " and the forget QA its target learned" if args.benchmark in TRAINED_QA else ""
        _refuse(args, ["forget"], f"to {args.benchmark} (it unlearns the raw forget texts{qa})")
    config = _config_from_args(args, eval_every=args.eval_every, keep_best=args.keep_best,
                               lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
                               backend=args.backend)
    job = UnlearnJob(
        out=Path(args.out), config=config, model=args.model, benchmark=args.benchmark,
        forget=args.forget or "forget10", data_dir=args.data_dir, seeds=tuple(args.seeds),
        device=args.device, dtype=args.dtype, cache_dir=args.cache_dir,
        overwrite=args.overwrite, resume=args.resume, keep_checkpoint=args.keep_checkpoint,
    )
    run_unlearn_job(job)
    return 0


def _add_unlearn_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "unlearn", parents=[parent], help="unlearn a forget split with one method",
        description="Unlearn the forget split of a benchmark from a model. Each epoch is one "
                    "pass over the forget set; every forget batch is paired with a random "
                    "retain batch. Writes OUT/model (save_pretrained), history.json (per-step "
                    "losses, norms, learning rate) and summary.json. A whole-run checkpoint "
                    "(OUT/checkpoint, verified by a SHA-256 manifest) lets an interrupted run "
                    "continue with --resume; it is removed when the run succeeds unless "
                    "--keep-checkpoint.",
    )
    _add_model_args(p, ALL_BENCHMARKS)
    p.add_argument("--forget", default=None,
                   help="forget split of TOFU-style benchmarks: forget01/05/10 (default forget10)")
    _add_unlearn_args(p, method=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="one run per seed (data order; synthetic data and embedded model too)")
    p.add_argument("--eval-every", type=int, default=None,
                   help="evaluate every N steps (and at the start and the end): ROUGE-L "
                        "recall and fact accuracy on the forget and retain questions, or the "
                        "MUSE metrics; writes evals.json and evals.png")
    p.add_argument("--keep-best", default=None, metavar="METRIC:min|max",
                   help="keep the model of the best evaluation in OUT/best-model, e.g. "
                        "forget_rouge_l_recall:min or a combined score such as "
                        "retain_rouge_l_recall-forget_rouge_l_recall:max")
    p.add_argument("--lora-rank", type=int, default=None,
                   help="train LoRA adapters of this rank (peft) instead of every weight; "
                        "OUT/model is the merged model, OUT/model/adapter the adapters")
    p.add_argument("--lora-alpha", type=float, default=None,
                   help="LoRA alpha (default 2 × rank)")
    p.add_argument("--backend", default=None, choices=["auto", "torch", "triton"],
                   help="optimizer backend (default auto: the fused Triton kernels on CUDA "
                        "tensors when triton imports, the pure-PyTorch one otherwise)")
    p.add_argument("--out", required=True, help="output folder (must be new or empty)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out, starting its run over (only this "
                        "command's files are replaced)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run checkpointed in --out (same settings required)")
    p.add_argument("--keep-checkpoint", action="store_true",
                   help="keep OUT/checkpoint after a successful run (default: removed)")
    p.set_defaults(func=_cmd_unlearn)


# --------------------------------------------------------------------------- eval
def _cmd_eval(args: argparse.Namespace) -> int:
    """``fastngd eval``: the TOFU (QA benchmarks) or MUSE protocol on one model."""
    from fastngd.data.loading import QA_BENCHMARKS, retain_splits, tofu_configs
    from fastngd.errors import UsageError
    from fastngd.reproduce.evaluation import EvalRequest, evaluate_model
    from fastngd.reproduce.io import output_file, write_json

    _set_threads(args)
    trained: list[tuple[str | None, str]] = [(args.model, "full")]
    if args.benchmark in QA_BENCHMARKS:
        configs = tofu_configs(args.forget or "forget10", args.benchmark)
        supported = retain_splits(args.benchmark)
        if args.retain_split is not None and args.retain_split not in supported:
            raise UsageError(f"--retain-split {args.retain_split} is not a retain split of "
                             f"{args.benchmark}; supported: {', '.join(supported)}")
        if args.retain_model is not None:
            trained.append((args.retain_model, configs.retain))
    else:
        _refuse(args, ["forget", "max_new_tokens", "retain_split", "retain_model",
                       "reference_truth_ratios"], f"to {args.benchmark} (TOFU-style only)")
    if args.retain_model is not None and args.reference_truth_ratios is not None:
        raise UsageError("pass --retain-model or --reference-truth-ratios, not both")
    _check_data(args.benchmark, args.data_dir, *trained)
    out = output_file(args.out, args.overwrite) if args.out else None
    record, table = evaluate_model(EvalRequest(
        model=args.model, benchmark=args.benchmark, data_dir=args.data_dir, seed=args.seed,
        forget=args.forget or "forget10", retain_split=args.retain_split,
        retain_model=args.retain_model, reference_file=args.reference_truth_ratios,
        device=args.device, dtype=args.dtype, cache_dir=args.cache_dir,
        max_new_tokens=args.max_new_tokens, max_examples=args.max_examples))
    print(table)
    if out is not None:
        write_json(out, record)
        print(f"wrote {out}")
    return 0


def _add_eval_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "eval", parents=[parent], help="evaluate a model (TOFU or MUSE protocol)",
        description="TOFU benchmarks: ROUGE-L recall, probability, truth ratio and fact "
                    "accuracy on the forget split and the retain-type splits, TOFU's model "
                    "utility (9 components), forget quality against a retain-only model "
                    "(--retain-model or --reference-truth-ratios), membership inference "
                    "against the holdout split, extraction strength, exact memorization and "
                    "the NGDiff paper's Verbmem/Knowmem/Utility. MUSE benchmarks: VerbMem, "
                    "KnowMem, PrivLeak and the same membership-inference and memorization "
                    "metrics. The JSON layout is documented in docs/eval_layout.md.",
    )
    _add_model_args(p, ALL_BENCHMARKS)
    p.add_argument("--forget", "--forget-split", dest="forget", default=None,
                   help="forget split (TOFU; forget01/05/10, default forget10)")
    p.add_argument("--retain-split", default=None,
                   help="also score this whole retain split (TOFU: retain90, retain95 or "
                        "retain99)")
    p.add_argument("--retain-model", default=None, metavar="DIR",
                   help="retain-only reference model of forget quality (TOFU): a folder, a "
                        "Hugging Face id, or 'embedded' (the embedded model trained on the "
                        "retain split of --forget, as fastngd finetune --split retain90 does)")
    p.add_argument("--reference-truth-ratios", default=None, metavar="FILE",
                   help="forget quality against these saved reference truth ratios (TOFU): "
                        "the JSON fastngd eval --out wrote for the retain-only model")
    p.add_argument("--seed", type=int, default=0, help="seed of synthetic data")
    p.add_argument("--max-new-tokens", type=_positive_int, default=None, metavar="N",
                   help="generation length, at least 1 (TOFU; default 200)")
    p.add_argument("--max-examples", type=_positive_int, default=None, metavar="N",
                   help="score only the first N examples of every split (default: all)")
    p.add_argument("--out", default=None, help="write the full result to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=_cmd_eval)


# --------------------------------------------------------------------------- reproduce
_REPRODUCE_FLAGS = {
    "digits": (["model", "benchmark", "data_dir", "forget", "jobs", "autolr_every",
                "autolr_scale", "step_size", "batch_size"], "to digits"),
    "tofu": (["forget_class", "limit"], "to tofu (digits only)"),
    "muse": (["forget_class", "limit", "forget", "jobs"], "to muse"),
}


def _cmd_reproduce(args: argparse.Namespace) -> int:
    """``fastngd reproduce {tofu,muse,digits}`` over ``--seeds``."""
    from fastngd.data.loading import QA_BENCHMARKS, TEXT_BENCHMARKS, tofu_configs
    from fastngd.errors import UsageError
    from fastngd.reproduce.experiment import Experiment, run_experiment

    _set_threads(args)
    flags, why = _REPRODUCE_FLAGS[args.experiment]
    _refuse(args, flags, why)
    benchmark = args.benchmark or ("muse-synthetic" if args.experiment == "muse"
                                   else "tofu-synthetic")
    valid = {"tofu": QA_BENCHMARKS, "muse": TEXT_BENCHMARKS, "digits": (benchmark,)}
    if benchmark not in valid[args.experiment]:
        raise UsageError(f"--benchmark {benchmark} does not fit reproduce {args.experiment}; "
                         f"valid: {', '.join(valid[args.experiment])}")
    if args.experiment == "tofu":
        tofu_configs(args.forget or "forget10", benchmark)
    if args.experiment != "digits":
        _check_data(benchmark, args.data_dir, (args.model, "full"))
    settings = _given(epochs=args.epochs, batch_size=args.batch_size, step_size=args.step_size,
                      autolr_every=args.autolr_every, autolr_scale=args.autolr_scale)
    settings.update(_forget_settings(args))
    options = _optimizer_options(args)
    lr = args.lr
    if options:
        settings["optimizer_options"] = options
        if lr is None and options.get("base", "sgd") != "sgd":  # the runs' rates are SGD's
            lr = _base_lr(options)
    run_experiment(Experiment(
        name=args.experiment, out=Path(args.out), seeds=tuple(args.seeds),
        methods=args.methods, autolr=args.autolr, lr=lr, settings=settings,
        model=args.model, benchmark=benchmark, data_dir=args.data_dir,
        forget=args.forget or "forget10", forget_class=args.forget_class or 0,
        limit=args.limit, jobs=args.jobs or 1, device=args.device, dtype=args.dtype,
        cache_dir=args.cache_dir, overwrite=args.overwrite,
    ))
    return 0


def _add_reproduce_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "reproduce", parents=[parent], help="run the experiments over several methods and seeds",
        description="tofu: unlearn a TOFU forget split with every method; muse: unlearn the "
                    "MUSE forget texts (muse-synthetic: and its forget QA); digits: forget "
                    "one class of scikit-learn's digits with a small network. Writes "
                    "per-seed JSON, results.json (mean, std) and table.txt into --out.",
    )
    p.add_argument("experiment", choices=["tofu", "muse", "digits"], help="which experiment")
    p.add_argument("--model", default=None, help="HF id or folder (tofu, muse; default embedded)")
    p.add_argument("--benchmark", default=None,
                   help="tofu: tofu-synthetic (default) or tofu; muse: muse-synthetic "
                        "(default), muse-news or muse-books")
    p.add_argument("--data-dir", default=None,
                   help="local files of a hub benchmark (tofu, muse-news, muse-books)")
    p.add_argument("--forget", default=None, help="forget split (tofu; default forget10)")
    p.add_argument("--forget-class", type=int, default=None,
                   help="digit to forget (digits; default 0)")
    p.add_argument("--limit", type=int, default=None, help="use only this many digits (digits)")
    p.add_argument("--methods", default=None,
                   help="comma-separated methods (default: the demo's runs; digits: all)")
    _add_unlearn_args(p, method=False)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    _add_runtime_args(p)
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes sharing the runs of one seed (tofu; default 1)")
    p.add_argument("--out", required=True, help="output folder (must be new or empty)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    p.set_defaults(func=_cmd_reproduce)


# --------------------------------------------------------------------------- data export
def _cmd_data_export(args: argparse.Namespace) -> int:
    """``fastngd data export NAME --out DIR``: write a benchmark as JSON Lines."""
    from fastngd.data.export import export_benchmark

    try:
        paths = export_benchmark(args.name, args.out, seed=args.seed, overwrite=args.overwrite)
    except FileExistsError as exc:  # the library names its argument; the user has a flag
        raise FileExistsError(str(exc).replace("(use overwrite=True)", "(pass --overwrite)")) \
            from exc
    print(f"wrote {len(paths)} files under {args.out}")
    return 0


def _add_data_parser(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Register ``data`` and its subcommands."""
    from fastngd.data.registry import BENCHMARKS

    data = sub.add_parser("data", parents=[parent], help="benchmark data utilities")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    export = data_sub.add_parser("export", parents=[parent],
                                 help="write a benchmark as JSONL files")
    export.add_argument("name", choices=sorted(BENCHMARKS), help="benchmark name")
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--seed", type=int, default=0, help="seed of synthetic benchmarks")
    export.add_argument("--overwrite", action="store_true", help="replace existing files")
    export.set_defaults(func=_cmd_data_export)


# --------------------------------------------------------------------------- main
def _build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="fastngd",
        description="Machine unlearning with normalized gradient difference (NGDiff), GeN "
                    "automatic learning rate and the classic baselines.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also accepted after the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parent = _debug_parent()
    for add in (_add_demo_parser, _add_finetune_parser, _add_unlearn_parser, _add_eval_parser,
                _add_reproduce_parser, _add_data_parser):
        add(sub, parent)
    return parser


def _exit_status(exc: BaseException) -> int | None:
    """The exit status of an error the user can act on (None: a bug, re-raised)."""
    from fastngd.distributed import RankFailed
    from fastngd.errors import UserError
    from fastngd.unlearn import UnlearningDiverged

    if isinstance(exc, UserError):
        return exc.exit_code
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return 2  # the choice of --out
    if isinstance(exc, (UnlearningDiverged, RankFailed, OSError)):
        return 1  # a diverged run, another rank's failure, a full disk, a permission
    if isinstance(exc, ModuleNotFoundError) and exc.name in _EXPERIMENT_MODULES:
        return 1  # an experiment-only package is not installed
    return None


_EXPERIMENT_MODULES = {"rouge_score": "rouge-score", "scipy": "scipy",
                       "sklearn": "scikit-learn", "datasets": "datasets",
                       "matplotlib": "matplotlib"}
"""Import name → package of the ``experiments`` extra (scoring, hub data, figures)."""


def _message(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name in _EXPERIMENT_MODULES:
        return (f"this needs {_EXPERIMENT_MODULES[exc.name]}, which is not installed: "
                "pip install 'fastngd[experiments]'")
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _one_line_warnings() -> None:
    """Warnings print as ``fastngd: warning: <message>`` (one line, no source excerpt)."""
    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
        print(f"fastngd: warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Errors the user can fix print one line and give status 2 (usage) or 1 (runtime,
    input); ``--debug`` prints their traceback too. Other exceptions propagate.
    """
    args = _build_parser().parse_args(list(argv) if argv is not None else None)
    command = args.command + {"reproduce": f" {getattr(args, 'experiment', '')}",
                              "data": f" {getattr(args, 'data_command', '')}"}.get(args.command, "")
    previous = warnings.showwarning
    _one_line_warnings()
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"fastngd {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        status = _exit_status(exc)
        if status is None:
            raise
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"fastngd {command}: error: {_message(exc)}", file=sys.stderr)
        return status
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())

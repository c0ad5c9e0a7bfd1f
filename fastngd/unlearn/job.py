"""``fastngd unlearn``: one method on one benchmark, for one or more seeds, into a folder.

For each seed the job loads the model (``--model``) and only the rows unlearning needs,
attaches LoRA adapters (``--lora-rank``), wraps the model in DDP under ``torchrun``, runs
:func:`fastngd.unlearn.unlearn` with whole-run checkpoints in ``OUT/checkpoint`` and writes:

* ``OUT/model`` (``save_pretrained``; with LoRA the merged model, and the adapters in
  ``OUT/model/adapter``), ``history.json``, ``summary.json``;
* with ``--eval-every``/``--keep-best``: ``evals.json``, ``evals.png`` and ``OUT/best-model``;
* nothing else: the checkpoint is removed once the outputs are written, unless
  ``keep_checkpoint``.

A diverged run saves the last finite model it has (or says that there is none) and fails
with :class:`~fastngd.unlearn.UnlearningDiverged`. Under ``torchrun`` rank 0 alone writes
and prints; every rank loads (rank 0 first, so that a cache is filled once).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from fastngd import distributed as fdist
from fastngd.atomic import write_folder
from fastngd.errors import InputError
from fastngd.unlearn.checkpoint import checkpoint_exists, load_checkpoint, remove_checkpoint
from fastngd.unlearn.config import UnlearnConfig
from fastngd.unlearn.loop import UnlearningDiverged, UnlearnResult, unlearn
from fastngd.unlearn.state import full_model_state

__all__ = ["UnlearnJob", "eval_hint", "run_unlearn_job"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class UnlearnJob:
    """Everything ``fastngd unlearn`` was asked to do.

    Attributes:
        out: the output folder (one sub-folder ``seed<S>`` per seed when several).
        config: the run settings (each seed's run uses ``config.replace(seed=S)``).
        model: ``--model`` (``None``/``"embedded"``: the embedded model of the benchmark).
        benchmark, forget, data_dir: the data (``--benchmark``, ``--forget``, ``--data-dir``).
        seeds: one run per seed.
        device, dtype, cache_dir: where and how the model is loaded.
        overwrite: write into a non-empty ``out`` (replacing only this job's files; an old
            checkpoint is started over).
        resume: continue the runs checkpointed in ``out``.
        keep_checkpoint: keep ``OUT/checkpoint`` after a successful run.
    """

    out: Path
    config: UnlearnConfig
    model: str | None = None
    benchmark: str = "tofu-synthetic"
    forget: str = "forget10"
    data_dir: str | None = None
    seeds: tuple[int, ...] = (0,)
    device: str = "cpu"
    dtype: str = "float32"
    cache_dir: str | None = None
    overwrite: bool = False
    resume: bool = False
    keep_checkpoint: bool = False
    qa: bool = field(init=False)

    def __post_init__(self) -> None:
        from fastngd.data.loading import QA_BENCHMARKS

        object.__setattr__(self, "qa", self.benchmark in QA_BENCHMARKS)

    def folder(self, seed: int) -> Path:
        """The output folder of ``seed``'s run."""
        return self.out / f"seed{seed}" if len(self.seeds) > 1 else self.out


def eval_hint(job: UnlearnJob, model_dir: Path, seed: int) -> str:
    """The ``fastngd eval`` command that evaluates ``model_dir`` on the job's data."""
    from fastngd.data import get_benchmark

    parts = ["fastngd eval", f"--model {model_dir}", f"--benchmark {job.benchmark}"]
    if job.data_dir is not None:
        parts.append(f"--data-dir {job.data_dir}")
    if job.qa and job.forget != "forget10":
        parts.append(f"--forget {job.forget}")
    if get_benchmark(job.benchmark).synthetic and seed != 0:
        parts.append(f"--seed {seed}")
    return " ".join(parts)


def _check_before_work(job: UnlearnJob) -> None:
    """Refuse what would fail only after the work: settings, data flags and files (those the
    embedded model trains on), device, a ``--resume`` of runs that finished (their
    checkpoint is gone)."""
    from fastngd.data.loading import check_data_dir, check_training_files, tofu_configs
    from fastngd.models.loading import resolve_device, resolve_dtype
    from fastngd.models.target import is_embedded

    job.config.validate()
    resolve_dtype(job.dtype)
    resolve_device(job.device)
    check_data_dir(job.benchmark, job.data_dir)
    if is_embedded(job.model):
        check_training_files(job.benchmark, job.data_dir)
    if job.qa:
        tofu_configs(job.forget, job.benchmark)
    if not job.resume:
        return
    if job.out.exists() and not job.out.is_dir():
        raise NotADirectoryError(f"--out {job.out} exists and is not a folder (with --resume)")
    for seed in job.seeds:
        folder = job.folder(seed)
        if (folder / "summary.json").exists() and not checkpoint_exists(folder / "checkpoint"):
            raise InputError(
                f"nothing to resume in {folder}: the run finished (summary.json) and its "
                "checkpoint was removed (--keep-checkpoint keeps it); start over with "
                "--overwrite"
            )


def _load(job: UnlearnJob, seed: int, log: Log) -> tuple[Any, Any, str, Any, Any, Any]:
    """``(model, tokenizer, source, forget set, retain set, evaluate hook)`` of a seed."""
    from fastngd.data import QADataset, rows_dataset, warn_overlap, warn_unknown_tokens
    from fastngd.data.loading import load_unlearning_rows
    from fastngd.models.target import load_target_model

    model, tokenizer, source = fdist.rank0_first(lambda: load_target_model(
        job.model, benchmark=job.benchmark, seed=seed, device=job.device, dtype=job.dtype,
        cache_dir=job.cache_dir, progress=fdist.is_main(), data_dir=job.data_dir))
    forget_rows, retain_rows = fdist.rank0_first(lambda: load_unlearning_rows(
        job.benchmark, job.forget, data_dir=job.data_dir, seed=seed))
    forget: Any
    retain: Any
    if job.qa:
        forget = QADataset(forget_rows, tokenizer, job.config.max_length)
        retain = QADataset(retain_rows, tokenizer, job.config.max_length)
    else:
        forget = rows_dataset(forget_rows, tokenizer, 256)
        retain = rows_dataset(retain_rows, tokenizer, 256)
    if fdist.is_main():
        warn_overlap(forget_rows, retain_rows)
        for what, data in (("forget set", forget), ("retain set", retain)):
            warn_unknown_tokens((data[i] for i in range(len(data))), tokenizer, what)
    evaluate = None
    if job.config.eval_every is not None or job.config.keep_best is not None:
        evaluate = fdist.rank0_first(lambda: _evaluator(job, tokenizer, seed, forget_rows,
                                                        retain_rows))
    return model, tokenizer, source, forget, retain, evaluate


def _evaluator(job: UnlearnJob, tokenizer: Any, seed: int, forget_rows: list[Any],
               retain_rows: list[Any]) -> Callable[[Any], dict[str, Any]]:
    """The evaluate hook of ``--eval-every``: ROUGE-L recall and fact accuracy on the forget
    and retain questions (TOFU-style), or the MUSE metrics."""
    if job.qa:
        from fastngd.data.loading import load_split
        from fastngd.reproduce.tofu import tofu_curve

        curve_retain = load_split(job.benchmark, "retain_perturbed", data_dir=job.data_dir,
                                  seed=seed, required=False, purpose="retain questions of "
                                  "the curve: the retain split is used instead")
        return tofu_curve(tokenizer, forget_rows, curve_retain or retain_rows[:len(forget_rows)])
    from fastngd.eval import load_muse_eval_data
    from fastngd.reproduce.muse import muse_evaluator

    data = load_muse_eval_data(job.benchmark, data_dir=job.data_dir, seed=seed)
    return muse_evaluator(tokenizer, data, corpus=job.benchmark)


def _prepare_model(model: nn.Module, job: UnlearnJob, seed: int) -> tuple[nn.Module, nn.Module]:
    """``(work model, trained model)``: LoRA adapters attached (``--lora-rank``), then the
    DDP wrapper under ``torchrun``."""
    work = model
    if job.config.lora_rank is not None:
        from fastngd.models.lora import apply_lora

        work = apply_lora(model, job.config.lora_rank, alpha=job.config.lora_alpha,
                          target_modules=job.config.lora_target_modules, seed=seed)
    if fdist.world_size() == 1:
        return work, work
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [next(work.parameters()).device.index] if job.device.startswith("cuda") else None
    return work, DistributedDataParallel(work, device_ids=device_ids)


def save_model(model: nn.Module, tokenizer: Any, folder: Path,
               state: dict[str, Any] | None = None) -> None:
    """Save ``model`` (after loading ``state`` into it, when given) into ``folder``, its files
    replaced atomically one by one. A LoRA model is saved merged, its adapters beside it in
    ``folder/adapter``."""
    from fastngd.models.lora import is_lora_model, merge_lora

    if state is not None:
        model.load_state_dict(state)

    def write(tmp: Path) -> None:
        target = model
        if is_lora_model(model):
            model.save_pretrained(tmp / "adapter")  # type: ignore[operator]
            target = merge_lora(copy.deepcopy(model))
        target.save_pretrained(tmp)  # type: ignore[operator]
        tokenizer.save_pretrained(tmp)

    write_folder(folder, write, overwrite=True)


def _check_text(check: dict[str, Any] | None) -> str:
    """The retain check's line end: how many examples it kept, and the broken count of each
    check (empty without the check)."""
    if check is None:
        return ""
    counts = ", ".join(str(entry["broken"]) for entry in check["log"]) or "none"
    return (f"; retain check: {check['kept']} of {check['checked']} examples reproduced "
            f"before, broken at each check: {counts}")


def _summary(job: UnlearnJob, config: UnlearnConfig, source: str,
             result: UnlearnResult | None) -> dict[str, Any]:
    last = result.history[-1] if result is not None and result.history else {}
    return {
        "method": config.method, "autolr": config.autolr, "lr": config.lr, "seed": config.seed,
        "model": source, "benchmark": job.benchmark,
        "steps": result.steps if result else None,
        "final_lr": result.final_lr if result else None,
        "final_loss_retain": last.get("loss_retain"),
        "final_loss_forget": last.get("loss_forget"),
        "wall_seconds": result.wall_seconds if result else None,
        "options": config.shared_options(),
        "memory": result.memory if result else None,
        "best": result.best if result else None,
        "retain_check": result.retain_check if result else None,
    }


def _write_outputs(job: UnlearnJob, folder: Path, work: nn.Module, tokenizer: Any,
                   result: UnlearnResult, summary: dict[str, Any], log: Log) -> None:
    """Rank 0: model, history, summary, evaluations and the best model; then the checkpoint
    goes unless kept."""
    from fastngd.reproduce.io import write_json

    save_model(work, tokenizer, folder / "model")
    write_json(folder / "history.json", result.history)
    if result.evals:
        from fastngd.plots import plot_evals

        write_json(folder / "evals.json", result.evals)
        plot_evals(result.evals, folder / "evals.png", best=result.best,
                   title=f"{job.config.method} on {job.benchmark}")
    if result.best is not None:
        save_model(work, tokenizer, folder / "best-model", result.best_state())
    write_json(folder / "summary.json", summary)
    if not job.keep_checkpoint:
        remove_checkpoint(folder / "checkpoint")
    log(f"  saved {folder / 'model'}, history.json, summary.json"
        + (f", best-model (step {result.best['step']})" if result.best else "")
        + (f" (evaluate with: {eval_hint(job, folder / 'model', summary['seed'])})"))


def _save_after_divergence(job: UnlearnJob, folder: Path, work: nn.Module, trained: nn.Module,
                           tokenizer: Any, exc: UnlearningDiverged) -> str:
    """Save the last finite model of a diverged run into ``folder/model``; returns what was
    done, in words. A collective under ``torchrun`` (the state is gathered)."""
    state: dict[str, Any] | None = None
    source = ""
    if exc.model_finite:
        state, source = full_model_state(trained), f"the model after step {exc.step}"
    elif exc.checkpoint_dir is not None:
        saved = fdist.on_rank0(lambda: load_checkpoint(exc.checkpoint_dir))  # type: ignore[arg-type]
        if saved is not None:
            state, source = saved["model"], f"the last checkpoint (step {saved['step']})"
    if not fdist.broadcast_from_rank0(state is not None):
        return "no finite model to save (no step succeeded and no checkpoint exists)"
    fdist.on_rank0(lambda: save_model(work, tokenizer, folder / "model", state),
                   "could not save the last finite model")
    return f"saved {source} to {folder / 'model'}"


def _run_seed(job: UnlearnJob, seed: int, log: Log) -> dict[str, Any]:
    """Load, unlearn and write the outputs of one seed; returns its summary."""
    folder = job.folder(seed)
    config = job.config.replace(seed=seed)
    if job.overwrite and not job.resume and fdist.is_main():
        remove_checkpoint(folder / "checkpoint")  # --overwrite: start this run over
    model, tokenizer, source, forget, retain, evaluate = _load(job, seed, log)
    work, trained = _prepare_model(model, job, seed)
    world = fdist.world_size()
    where = f"{job.benchmark}/{job.forget if job.qa else 'forget'}"
    log(f"unlearning {where} from {source} with {config.method} (autolr={config.autolr}, "
        f"lr={config.lr:g}, seed={seed}{f', {world} ranks' if world > 1 else ''}"
        f"{f', LoRA rank {config.lora_rank}' if config.lora_rank else ''})")
    try:
        result = unlearn(trained, forget, retain, config, evaluate=evaluate,
                         checkpoint_dir=folder / "checkpoint", resume=job.resume,
                         progress=fdist.is_main())
    except UnlearningDiverged as exc:
        done = _save_after_divergence(job, folder, work, trained, tokenizer, exc)
        raise UnlearningDiverged(f"{exc} ({done})", exc.step, exc.model_finite,
                                 exc.checkpoint_dir) from exc
    summary = _summary(job, config, source, result)
    last = result.history[-1] if result.history else {}
    memory = result.memory
    log(f"  {result.steps} steps in {result.wall_seconds:.0f} s; retain loss "
        f"{last.get('loss_retain', float('nan')):.4f}, forget objective "
        f"{last.get('loss_forget', float('nan')):.4f}, final lr {result.final_lr:.4g}; "
        f"{memory['trainable_parameters']:,} of {memory['parameters']:,} parameters trained "
        f"(gradient buffers {memory['gradient_buffer_bytes'] / 2**20:.1f} MiB)"
        + _check_text(result.retain_check))
    fdist.on_rank0(lambda: _write_outputs(job, folder, work, tokenizer, result, summary, log),
                   "could not write the outputs")
    return summary


def run_unlearn_job(job: UnlearnJob, log: Log = print) -> list[dict[str, Any]]:
    """Run ``job`` (see the module docstring); returns each seed's summary. Under
    ``torchrun`` the process group is started here (and ended when this call started it)."""
    _check_before_work(job)
    run = fdist.init_from_env(job.device)
    job = job if run.device == job.device else _with_device(job, run.device)
    say: Log = log if run.rank == 0 else (lambda _: None)
    try:
        with ExitStack() as stack:
            from fastngd.reproduce.io import output_folder

            fdist.on_rank0(lambda: stack.enter_context(output_folder(
                job.out, job.overwrite, resume=job.resume)), "could not prepare --out")
            return [_run_seed(job, seed, say) for seed in job.seeds]
    finally:
        fdist.shutdown(run)


def _with_device(job: UnlearnJob, device: str) -> UnlearnJob:
    from dataclasses import replace

    return replace(job, device=device)

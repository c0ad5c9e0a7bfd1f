"""The unlearning loop: every method of :mod:`.methods` through :class:`fastngd.NGDiffOptimizer`.

Protocol (see :func:`unlearn`): each epoch is one pass over the forget set in a seeded random
order; each forget batch is paired with a random retain batch; one optimizer step per pair,

    L_R = CE(retain batch)            (decreased)
    L_F = objective(forget batch)     (increased: CE, −L_NPO or −L_SimNPO)
    θ ← θ − η·(w_R·∇L_R − w_F·∇L_F)   (w from the method's rule, η from GeN when autolr)

The model stays in eval mode inside the closures (no dropout), so the GeN probes of the
retain loss are deterministic.

Under ``torchrun`` (a process group with W > 1 ranks, the model wrapped in DDP or sharded with
FSDP2), every rank follows the same data order and processes its share ``rank::W`` of each
forget and retain batch; DDP/FSDP2 average the gradients and the optimizer averages the
losses, so the run follows the full-batch one. Checkpoints hold the full (gathered) model
state and are written by rank 0 only; the checkpoint folder must be visible to every rank.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm.auto import tqdm  # type: ignore[import-untyped]

from fastngd import distributed as fdist
from fastngd.distributed import reshard_fsdp
from fastngd.optimizer import NGDiffOptimizer
from fastngd.unlearn.batching import (
    EpochPlan,
    check_shardable,
    data_fingerprint,
    epoch_plan,
    rank_share,
    steps_per_epoch,
)
from fastngd.unlearn.checkpoint import (
    CHECKPOINT_NAME,
    config_mismatch,
    load_checkpoint,
    save_checkpoint,
)
from fastngd.unlearn.methods import get_method
from fastngd.unlearn.objectives import ForgetObjective, get_objective, mean_nll
from fastngd.unlearn.tasks import Task, infer_task

__all__ = ["UnlearnConfig", "UnlearnResult", "UnlearningDiverged", "unlearn"]

StepCallback = Callable[[dict[str, Any]], Optional[bool]]
Evaluator = Callable[[nn.Module], Mapping[str, float]]


class UnlearningDiverged(RuntimeError):
    """A loss became NaN or infinite: the run stopped; the last good checkpoint is kept."""


@dataclass(frozen=True)
class UnlearnConfig:
    """Everything that defines an unlearning run (checked on resume).

    Attributes:
        method: a name of :func:`fastngd.unlearn.get_method` (``"ngdiff"``, ``"gdiff-0.9"``...).
        autolr: fit the learning rate with GeN.
        epochs: passes over the forget set.
        batch_size: forget examples per step.
        retain_batch_size: retain examples per step (default: ``batch_size``).
        lr: initial (GeN) or fixed learning rate η.
        seed: seeds the data order and the randomised rules.
        autolr_every, autolr_scale, autolr_ema, autolr_clip: GeN settings
            (:class:`fastngd.autolr.GeNConfig`).
        objective_options: overrides of the forget objective's options (``beta``, ``delta``).
        backend, retain_storage: passed to :class:`fastngd.NGDiffOptimizer`.
    """

    method: str = "ngdiff"
    autolr: bool = True
    epochs: int = 10
    batch_size: int = 8
    retain_batch_size: int | None = None
    lr: float = 0.02
    seed: int = 0
    autolr_every: int = 2
    autolr_scale: float = 1.8
    autolr_ema: float = 0.9
    autolr_clip: tuple[float, float] = (0.5, 2.0)
    objective_options: dict[str, float] = field(default_factory=dict)
    backend: str = "auto"
    retain_storage: str = "exact"

    def validate(self) -> None:
        """Raise ValueError on an unusable setting (unknown method, non-positive sizes...)."""
        get_method(self.method)
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.retain_batch_size is not None and self.retain_batch_size < 1:
            raise ValueError(f"retain_batch_size must be positive, got {self.retain_batch_size}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite positive number, got {self.lr!r}")


@dataclass
class UnlearnResult:
    """What :func:`unlearn` returns.

    Attributes:
        model: the unlearned model (the same object that was passed in, updated in place).
        config: the run's :class:`UnlearnConfig`.
        history: one record per step: ``step`` (1-based), ``epoch``, ``loss_retain``,
            ``loss_forget`` (the forget closure's value), ``norm_retain``, ``norm_forget``,
            ``cosine``, ``weight_retain``, ``weight_forget``, ``lr``, ``lr_scale``,
            ``lr_updated``.
        evals: ``{"step": s, **metrics}`` from ``evaluate`` at step 0, every ``eval_every``
            steps and at the end.
        steps: steps done in total (resumed ones included).
        wall_seconds: time spent in this call.
        completed: the run did all its epochs (False when stopped by ``max_steps`` or a
            callback).
    """

    model: nn.Module
    config: UnlearnConfig
    history: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    steps: int
    wall_seconds: float
    completed: bool

    @property
    def final_lr(self) -> float:
        """The learning rate of the last step (NaN when no step was made)."""
        return float(self.history[-1]["lr"]) if self.history else float("nan")


def _as_dataset(data: Any, tokenizer: Any, max_length: int, what: str) -> Any:
    """Encode QA rows with ``tokenizer`` when needed; pass datasets of examples through."""
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise TypeError(f"{what} must be a sized, indexable dataset, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"the {what} set is empty")
    first = data[0]
    if isinstance(first, Mapping) and "question" in first and "input_ids" not in first:
        if tokenizer is None:
            raise ValueError(f"{what} holds QA rows: pass tokenizer=... to encode them")
        from fastngd.data.tokenize import QADataset

        return QADataset(data, tokenizer, max_length)
    return data


def _config_record(
    config: UnlearnConfig, forget: Sequence[Any], retain: Sequence[Any],
    objective: ForgetObjective, world: int = 1,
) -> dict[str, Any]:
    """The configuration compared on resume (run settings, data fingerprints, world size)."""
    method = get_method(config.method)
    record = asdict(config)
    record["autolr_clip"] = list(config.autolr_clip)
    record.update(
        method=method.name,
        rule=method.rule,
        rule_options=dict(method.rule_options),
        objective=objective.describe(),
        n_forget=len(forget),
        n_retain=len(retain),
        forget_fingerprint=data_fingerprint(forget),
        retain_fingerprint=data_fingerprint(retain),
        world_size=int(world),
    )
    return record


def _check_world_size(saved_config: Mapping[str, Any], world: int, where: Any) -> None:
    """Refuse to resume a checkpoint written with another number of ranks (checkpoints
    without a recorded world size come from single-process runs)."""
    saved_world = int(saved_config.get("world_size", 1))
    if saved_world != world:
        raise ValueError(
            f"cannot resume: the checkpoint in {where} was written by a run on {saved_world} "
            f"process(es) (world size {saved_world}), this run has world size {world}. Each "
            "rank's share of every batch depends on the world size: resume with "
            f"{saved_world} process(es) or start a new run in another folder"
        )


def _rank(world: int) -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if world > 1 and dist.is_available() and dist.is_initialized() else 0


def _full_model_state(model: nn.Module, world: int) -> dict[str, Any]:
    """The whole model state on CPU: a copy of ``state_dict()`` on one process; under
    ``torchrun`` gathered with ``get_model_state_dict(full_state_dict=True)`` (a collective:
    every rank calls it; only rank 0 receives the tensors, the others get ``{}``). DDP's
    ``module.`` prefix and FSDP2's DTensor shards disappear: keys are the plain module's."""
    if world == 1:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def _load_full_model_state(model: nn.Module, state: dict[str, Any], world: int) -> None:
    """Inverse of :func:`_full_model_state`; under ``torchrun`` every rank passes the full
    state it read from the checkpoint and keeps its own shard (FSDP2) or replica (DDP)."""
    if world == 1:
        model.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def _optimizer_state(optimizer: NGDiffOptimizer) -> dict[str, Any]:
    """The optimizer's state between steps. NGDiffOptimizer keeps no per-parameter tensor
    between steps (the retain gradient is dropped after each step), so this is the same on
    every rank, sharded or not; a per-parameter tensor would be a shard under FSDP2."""
    state = optimizer.state_dict()
    leftover = [k for k, v in state["state"].items() if v]
    if leftover:
        raise RuntimeError(
            f"the optimizer holds per-parameter state between steps ({len(leftover)} "
            "parameters): it cannot be checkpointed as a whole-run state"
        )
    return state


def _all_rng_states(world: int) -> list[dict[str, Any]] | None:
    """Every rank's RNG states on rank 0 (``None`` on the other ranks); one collective."""
    mine = _rng_state()
    if world == 1:
        return [mine]
    gathered: list[Any] = [None] * world if _rank(world) == 0 else []
    dist.gather_object(mine, gathered if _rank(world) == 0 else None, dst=0)
    return gathered if _rank(world) == 0 else None


@torch.no_grad()
def _reference_nll(model: nn.Module, task: Task, data: Sequence[Any], batch_size: int) -> Tensor:
    """Sequence-summed NLL of every example under the model as it is now (NPO's π_ref)."""
    out = []
    for start in range(0, len(data), batch_size):
        batch = task.collate([data[i] for i in range(start, min(len(data), start + batch_size))])
        nll, _ = task.nll(model, batch)
        out.append(nll.detach().float().cpu())
    return torch.cat(out)


def _params_finite(model: nn.Module, world: int = 1) -> bool:
    """All parameters are finite; under ``torchrun`` on every rank (each checks its local
    shard or replica, then one ``all_reduce``), so all ranks get the same answer."""
    params = [fdist.local_view(p) for p in model.parameters()]
    finite = all(bool(torch.isfinite(p).all()) for p in params)
    if world == 1:
        return finite
    device = params[0].device if params else torch.device("cpu")
    flag = torch.tensor([0.0 if finite else 1.0], device=device)
    return not bool(fdist.all_reduce_sum(flag).item() > 0)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _closures(
    model: nn.Module, task: Task, objective: ForgetObjective, retain_batch: Any,
    forget_batch: Any, forget_ref: Tensor | None,
) -> tuple[Callable[[], Tensor], Callable[[], Tensor]]:
    """The two closures of one step: retain CE, and the forget objective's value.

    Each starts by resharding FSDP2 modules (a no-op otherwise), so that a forward after a
    GeN probe never reads stale gathered parameters.
    """

    def closure_retain() -> Tensor:
        reshard_fsdp(model)
        nll, n = task.nll(model, retain_batch)
        return mean_nll(nll, n)

    def closure_forget() -> Tensor:
        reshard_fsdp(model)
        nll, n = task.nll(model, forget_batch)
        return objective(nll, n, forget_ref)

    return closure_retain, closure_forget


def unlearn(
    model: nn.Module,
    forget: Any,
    retain: Any,
    method: str = "ngdiff",
    *,
    autolr: bool = True,
    epochs: int = 10,
    batch_size: int = 8,
    retain_batch_size: int | None = None,
    lr: float = 0.02,
    seed: int = 0,
    autolr_every: int = 2,
    autolr_scale: float = 1.8,
    autolr_ema: float = 0.9,
    autolr_clip: tuple[float, float] = (0.5, 2.0),
    objective_options: Mapping[str, float] | None = None,
    eval_every: int | None = None,
    evaluate: Evaluator | None = None,
    callbacks: Sequence[StepCallback] = (),
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    max_steps: int | None = None,
    task: Task | None = None,
    tokenizer: Any = None,
    max_length: int = 128,
    backend: str = "auto",
    retain_storage: str = "exact",
    progress: bool = False,
) -> UnlearnResult:
    """Unlearn ``forget`` from ``model`` while keeping ``retain``; updates ``model`` in place.

    Args:
        model: a causal LM (Hugging Face style: ``model(input_ids=..., attention_mask=...)
            .logits``) or a classifier (``model(x)`` → logits).
        forget, retain: datasets of encoded examples (e.g. :class:`fastngd.data.QADataset`),
            of ``(x, y)`` pairs, or lists of QA rows (``question``/``answer``; then pass
            ``tokenizer``, they are encoded with ``max_length``).
        method: see :data:`fastngd.unlearn.METHODS` (also ``gdiff-<c>``).
        autolr: GeN automatic learning rate (``lr`` is then the initial rate).
        epochs, batch_size, retain_batch_size, seed: the protocol (one epoch = one pass over
            the forget set; each forget batch with a random retain batch).
        lr, autolr_every, autolr_scale (κ), autolr_ema, autolr_clip: step size settings.
        objective_options: e.g. ``{"beta": 0.2}`` for NPO.
        eval_every, evaluate: ``evaluate(model)`` → metrics, recorded at step 0, every
            ``eval_every`` steps (when given) and at the end.
        callbacks: called after every step with the step record; returning True stops.
        checkpoint_dir, checkpoint_every, resume: whole-run checkpoints (default every
            epoch and at the end when ``checkpoint_dir`` is set). A folder that already
            holds a checkpoint is refused unless ``resume=True``; resuming with another
            configuration, other data or another world size is refused. Under ``torchrun``
            rank 0 writes the (gathered) checkpoint while the others wait; every rank reads
            it on resume, so the folder must be shared by all ranks.
        max_steps: stop after this many steps in total (the run can be resumed later).
        task: how to batch and score examples (inferred from the first example).
        progress: show a tqdm progress bar.

    Raises:
        UnlearningDiverged: a loss became non-finite (parameters of the last good step are
            in the checkpoint, when checkpointing).
        FileExistsError, ValueError: see ``checkpoint_dir``/``resume``; bad settings; under
            ``torchrun``, batch sizes that do not split into equal shares per rank.
    """
    config = UnlearnConfig(
        method=method, autolr=bool(autolr), epochs=epochs, batch_size=batch_size,
        retain_batch_size=retain_batch_size, lr=float(lr), seed=int(seed),
        autolr_every=autolr_every, autolr_scale=float(autolr_scale), autolr_ema=float(autolr_ema),
        autolr_clip=(float(autolr_clip[0]), float(autolr_clip[1])),
        objective_options=dict(objective_options or {}), backend=backend,
        retain_storage=retain_storage,
    )
    config.validate()
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every must be a positive integer, got {eval_every}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir")
    spec = get_method(config.method)
    objective = get_objective(spec.objective, **config.objective_options)
    forget_data = _as_dataset(forget, tokenizer, max_length, "forget")
    retain_data = _as_dataset(retain, tokenizer, max_length, "retain")
    if task is None:
        from torch.nn.parallel import DistributedDataParallel

        base = model.module if isinstance(model, DistributedDataParallel) else model
        pad = getattr(getattr(base, "config", None), "pad_token_id", None)
        if pad is None and tokenizer is not None:
            pad = getattr(tokenizer, "pad_token_id", None)
        task = infer_task(forget_data[0], pad)
    world = fdist.world_size()
    rank = _rank(world)
    record = _config_record(config, forget_data, retain_data, objective, world)

    n_forget, n_retain = len(forget_data), len(retain_data)
    per_epoch = steps_per_epoch(n_forget, config.batch_size)
    total = per_epoch * config.epochs
    retain_bs = config.retain_batch_size or config.batch_size
    check_shardable(n_forget, n_retain, config.batch_size, retain_bs, world)
    ckpt_every = checkpoint_every or per_epoch

    optimizer = NGDiffOptimizer(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.lr, rule=spec.rule, rule_options=dict(spec.rule_options),
        autolr=config.autolr, autolr_every=config.autolr_every, autolr_ema=config.autolr_ema,
        autolr_clip=config.autolr_clip, autolr_scale=config.autolr_scale,
        backend=config.backend, retain_storage=config.retain_storage, seed=config.seed,
    )

    was_training = model.training
    model.eval()
    step = 0
    history: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    ref_nll: Tensor | None = None
    saved = load_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    if saved is not None:
        if not resume:
            raise FileExistsError(
                f"{Path(checkpoint_dir) / CHECKPOINT_NAME} already exists (step "  # type: ignore[arg-type]
                f"{saved['step']}); pass resume=True to continue it or choose another folder"
            )
        _check_world_size(saved["config"], world, checkpoint_dir)
        diffs = config_mismatch({"world_size": 1, **saved["config"]}, record)
        if diffs:
            raise ValueError(
                "cannot resume: the checkpoint was made with another configuration or other "
                "data:\n  " + "\n  ".join(diffs)
            )
        _load_full_model_state(model, saved["model"], world)
        optimizer.load_state_dict(saved["optimizer"])
        step = int(saved["step"])
        history = list(saved["history"])
        evals = list(saved["evals"])
        ref_nll = saved["ref_nll"]
        rng_ranks = saved.get("rng_ranks")
        _set_rng_state(rng_ranks[rank] if rng_ranks is not None else saved["rng"])
    if objective.needs_reference and ref_nll is None:
        ref_nll = _reference_nll(model, task, forget_data, config.batch_size)

    plans: dict[int, EpochPlan] = {}

    def plan_for(epoch: int) -> EpochPlan:
        if epoch not in plans:
            plans.clear()
            plans[epoch] = epoch_plan(
                config.seed, epoch, n_forget, n_retain, config.batch_size, retain_bs
            )
        return plans[epoch]

    def checkpoint() -> None:
        """Write the whole run (skipped when a parameter is not finite). Under ``torchrun``
        every rank takes part in gathering the state, rank 0 alone writes the file and the
        others wait for it (a broadcast of its outcome: a failed write fails every rank), so
        ranks never race on the same file."""
        if checkpoint_dir is None or not _params_finite(model, world):
            return
        model_state = _full_model_state(model, world)
        rng_states = _all_rng_states(world)
        error: BaseException | None = None
        if rank == 0:
            assert rng_states is not None
            try:
                save_checkpoint(checkpoint_dir, {
                    "format": 1,
                    "config": record,
                    "step": step,
                    "model": model_state,
                    "optimizer": _optimizer_state(optimizer),
                    "data_order": plan_for(min(step // per_epoch, config.epochs - 1)),
                    "ref_nll": ref_nll,
                    "rng": rng_states[0],
                    "rng_ranks": rng_states if world > 1 else None,
                    "history": history,
                    "evals": evals,
                })
            except Exception as exc:
                if world == 1:
                    raise
                error = exc
        if world > 1:  # the others wait for rank 0 here, and learn whether it succeeded
            status = [None if error is None else f"{type(error).__name__}: {error}"]
            dist.broadcast_object_list(status, src=0)
            if error is not None:
                raise error
            if status[0] is not None:
                raise RuntimeError(f"rank 0 could not write the checkpoint: {status[0]}")

    def run_eval() -> None:
        if evaluate is None:
            return
        metrics = dict(evaluate(model))
        model.eval()
        evals.append({"step": step, **metrics})

    start_time = time.perf_counter()
    completed = False
    bar = tqdm(total=total, initial=step, desc=f"unlearn {spec.name}", disable=not progress,
               leave=False)
    try:
        if step == 0 and not evals:
            run_eval()
        stop = False
        while step < total and not stop:
            if max_steps is not None and step >= max_steps:
                break
            epoch, position = divmod(step, per_epoch)
            f_idx, r_idx = plan_for(epoch)[position]
            if world > 1:  # this rank's equal share of both batches
                f_idx, r_idx = rank_share(f_idx, rank, world), rank_share(r_idx, rank, world)
            f_batch = task.collate([forget_data[i] for i in f_idx])
            r_batch = task.collate([retain_data[i] for i in r_idx])
            f_ref = ref_nll[torch.tensor(f_idx)] if ref_nll is not None else None

            closure_retain, closure_forget = _closures(model, task, objective, r_batch,
                                                       f_batch, f_ref)
            stats = optimizer.step(closure_retain, closure_forget).as_dict()
            reshard_fsdp(model)
            if stats["skipped"]:
                where = (
                    f"; the last good checkpoint is in {checkpoint_dir}"
                    if checkpoint_dir is not None and load_checkpoint(checkpoint_dir) is not None
                    else ""
                )
                raise UnlearningDiverged(
                    f"{spec.name}: the run diverged at step {step + 1} (epoch {epoch + 1}): "
                    f"{stats['skip_reason']} (retain loss {stats['loss_retain']}, forget "
                    f"objective {stats['loss_forget']}){where}. Try a smaller lr or autolr."
                )
            step += 1
            entry = {
                "step": step,
                "epoch": epoch + 1,
                **{k: stats[k] for k in (
                    "loss_retain", "loss_forget", "norm_retain", "norm_forget", "cosine",
                    "weight_retain", "weight_forget", "lr", "lr_scale", "lr_updated",
                )},
            }
            history.append(entry)
            bar.update(1)
            bar.set_postfix(L_R=f"{entry['loss_retain']:.3f}", L_F=f"{entry['loss_forget']:.3f}",
                            lr=f"{entry['lr']:.3g}")
            for callback in callbacks:
                if callback(entry):
                    stop = True
            if eval_every is not None and step % eval_every == 0 and step < total:
                run_eval()
            if step % ckpt_every == 0 or step == total:
                if step == total:
                    run_eval()
                checkpoint()
        completed = step >= total
        if not completed and checkpoint_dir is not None:
            checkpoint()
    finally:
        bar.close()
        model.train(was_training)
    return UnlearnResult(
        model=model, config=config, history=history, evals=evals, steps=step,
        wall_seconds=time.perf_counter() - start_time, completed=completed,
    )

"""The unlearning loop: every method of :mod:`.methods` through :class:`fastngd.NGDiffOptimizer`.

Protocol (see :func:`unlearn`): each epoch is one pass over the forget set in a seeded random
order; each forget batch is paired with a random retain batch; one optimizer step per pair,

    L_R = CE(retain batch)            (decreased)
    L_F = objective(forget batch)     (increased: CE, −L_NPO or −L_SimNPO; for CE under the
                                       default forget target "refuse", the bounded CE minus
                                       the empty answer's loss: see .forget_target)
    θ ← θ − η·(w_R·∇L_R − w_F·∇L_F)   (w from the method's rule, η from GeN when autolr)

The model stays in eval mode inside the closures (no dropout), so the GeN probes of the
retain loss are deterministic.

Under ``torchrun`` (a process group with W > 1 ranks, the model wrapped in DDP or sharded with
FSDP2), every rank follows the same data order and processes its share ``rank::W`` of each
forget and retain batch. Token-mean losses are divided by the whole batch's token count over
all ranks (``N/W`` per rank, :func:`fastngd.unlearn.mean_nll`), so the average over ranks that
DDP/FSDP2 and the optimizer take is the full-batch loss and gradient: the run follows the
single process up to floating-point rounding. Checkpoints hold the full (gathered) model
state and are written by rank 0 only; the checkpoint folder must be visible to every rank.

A run is an :class:`_Run`: :meth:`_Run.restore` (resume), :meth:`_Run.step` (one step),
:meth:`_Run.checkpoint`, :meth:`_Run.evaluate` (with the best evaluation kept).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm  # type: ignore[import-untyped]

from fastngd import distributed as fdist
from fastngd.distributed import reshard_fsdp
from fastngd.errors import InputError, UsageError
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
    BEST_NAME,
    CHECKPOINT_NAME,
    checkpoint_exists,
    config_mismatch,
    load_checkpoint,
    load_verified,
    save_checkpoint,
    save_verified,
)
from fastngd.unlearn.config import RUN_CONTROL_FIELDS, UnlearnConfig, optimizer_kwargs
from fastngd.unlearn.forget_target import (
    ASCENT,
    ForgetTarget,
    resolve_forget_target,
    with_empty,
)
from fastngd.unlearn.methods import get_method
from fastngd.unlearn.objectives import ForgetObjective, get_objective, mean_nll
from fastngd.unlearn.retain_check import RetainCheck
from fastngd.unlearn.selection import parse_keep_best
from fastngd.unlearn.state import (
    all_rng_states,
    full_model_state,
    load_full_model_state,
    load_optimizer_state,
    optimizer_state,
    params_finite,
    set_rng_state,
)
from fastngd.unlearn.stopping import stopping_rule
from fastngd.unlearn.tasks import Task, infer_task, special_token_ids

__all__ = ["Evaluator", "StepCallback", "UnlearnResult", "UnlearningDiverged", "unlearn"]

StepCallback = Callable[[dict[str, Any]], Optional[bool]]
"""``callback(step_record)``, called after every step; returning True stops the run."""
Evaluator = Callable[[nn.Module], Mapping[str, float]]
"""``evaluate(model) -> {metric: value}``, called at step 0, every ``eval_every`` steps and
at the end."""

_HISTORY_KEYS = ("loss_retain", "loss_forget", "norm_retain", "norm_forget", "cosine",
                 "weight_retain", "weight_forget", "lr", "lr_scale", "lr_updated")


class UnlearningDiverged(RuntimeError):
    """A loss or gradient became NaN or infinite: the run stopped.

    Attributes:
        step: steps completed before the failed one.
        model_finite: whether the model's parameters are finite now (a skipped step leaves
            them as they were after ``step`` steps, so they normally are).
        checkpoint_dir: the folder holding the last good checkpoint, or None.
    """

    def __init__(self, message: str, step: int = 0, model_finite: bool = True,
                 checkpoint_dir: str | Path | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.model_finite = model_finite
        self.checkpoint_dir = checkpoint_dir


@dataclass
class UnlearnResult:
    """What :func:`unlearn` returns.

    Attributes:
        model: the unlearned model (the object passed in, updated in place; with
            ``lora_rank`` the ``peft`` model wrapping it, adapters not merged).
        config: the run's :class:`UnlearnConfig`.
        history: one record per step: ``step`` (1-based), ``epoch``, ``loss_retain``,
            ``loss_forget`` (the forget closure's value), ``norm_retain``, ``norm_forget``,
            ``cosine``, ``weight_retain``, ``weight_forget``, ``lr``, ``lr_scale``,
            ``lr_updated``, ``retain_repair`` (the broken retain examples that lead the
            step's retain batch, 0 outside a repair round), ``forget_indices`` (the forget batch, indices into the forget
            set) and ``forget_losses`` (each of those examples' token-mean cross-entropy
            ``nll_i / n_i`` before the step, each token's loss capped under the
            ``"refuse"`` target, NaN without a target token); under ``"refuse"`` also
            ``forget_cap`` (C) and, for language models, ``forget_empty`` (each example's
            empty-continuation loss ``ℓ_i^∅``, NaN without a scored position).
        evals: ``{"step": s, **metrics}`` from ``evaluate`` at step 0, every ``eval_every``
            steps and at the end.
        steps: steps done in total (resumed ones included).
        wall_seconds: time spent in this call.
        completed: the run did all its epochs and ended (False when paused by
            ``max_steps``, or stopped before its last epoch by a callback or the stopping
            rule; repair rounds of the retain check may run past the last epoch).
        best: with ``keep_best``: ``{"step", "score", "selection", "metrics"}`` of the best
            evaluation (None before any finite score).
        memory: :func:`fastngd.models.lora.trainable_memory` of the trained model.
        retain_check: with ``config.retain_check`` (:mod:`.retain_check`): ``checked`` (retain
            examples scored), ``kept`` (those reproduced before unlearning), ``rounds``
            (repair rounds run) and ``log`` (``{"step", "broken"}`` of every check); None
            without the check.
    """

    model: nn.Module
    config: UnlearnConfig
    history: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    steps: int
    wall_seconds: float
    completed: bool
    best: dict[str, Any] | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    retain_check: dict[str, Any] | None = None
    _best_state: dict[str, Any] | None = field(default=None, repr=False)
    _best_path: Path | None = field(default=None, repr=False)

    @property
    def final_lr(self) -> float:
        """The learning rate of the last step (NaN when no step was made)."""
        return float(self.history[-1]["lr"]) if self.history else float("nan")

    def best_state(self) -> dict[str, Any]:
        """The model ``state_dict`` (CPU, keys of the unwrapped model) of the best
        evaluation: from ``checkpoint_dir/best.pt`` (verified) when the run checkpointed,
        else kept in memory. Under ``torchrun`` only rank 0 holds it. Raises UsageError
        without ``keep_best`` or a best evaluation."""
        if self.best is None:
            raise UsageError("no best evaluation: run with keep_best and an evaluate hook")
        if self._best_state is not None:
            return self._best_state
        if self._best_path is None:
            raise UsageError("the best model state is held by rank 0 only")
        return dict(load_verified(self._best_path, ("model",))["model"])


def _as_dataset(data: Any, tokenizer: Any, max_length: int, what: str) -> Any:
    """Encode rows of QA pairs and raw text with ``tokenizer`` when needed
    (:func:`fastngd.data.rows_dataset`); pass datasets of examples through."""
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise TypeError(f"{what} must be a sized, indexable dataset, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"the {what} set is empty")
    first = data[0]
    if (isinstance(first, Mapping) and ("question" in first or "text" in first)
            and "input_ids" not in first):
        if tokenizer is None:
            raise ValueError(f"{what} holds rows of text: pass tokenizer=... to encode them")
        from fastngd.data.tokenize import rows_dataset

        return rows_dataset(data, tokenizer, max_length)
    return data


def _unwrapped(model: nn.Module) -> nn.Module:
    """The module inside DDP (FSDP2 modules are their own unwrapped form)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def _with_lora(model: nn.Module, config: UnlearnConfig) -> nn.Module:
    """``model`` with LoRA adapters when ``config.lora_rank`` is set (already attached ones
    are kept; a wrapped model must get them before it is wrapped)."""
    from fastngd.models.lora import apply_lora, is_lora_model

    if config.lora_rank is None or is_lora_model(_unwrapped(model)):
        return model
    if _unwrapped(model) is not model or fdist.world_size() > 1:
        raise UsageError(
            "lora_rank with a model wrapped for torchrun: attach the adapters first "
            "(fastngd.models.apply_lora), then wrap the model"
        )
    return apply_lora(model, config.lora_rank, alpha=config.lora_alpha,
                      target_modules=config.lora_target_modules, seed=config.seed)


def _clean_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values (numbers from numpy or 0-d tensors become floats), so that
    checkpoints hold no foreign types."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, int, float, str)) or value is None:
            out[str(key)] = value
        elif hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            out[str(key)] = value.item()
        else:
            out[str(key)] = value
    return out


@torch.no_grad()
def _reference_nll(model: nn.Module, task: Task, data: Sequence[Any], batch_size: int) -> Tensor:
    """Sequence-summed NLL of every example under the model as it is now (NPO's π_ref)."""
    out = []
    for start in range(0, len(data), batch_size):
        batch = task.collate([data[i] for i in range(start, min(len(data), start + batch_size))])
        nll, _ = task.nll(model, batch)
        out.append(nll.detach().float().cpu())
    return torch.cat(out)


def _closures(
    model: nn.Module, task: Task, objective: ForgetObjective, retain_batch: Any,
    forget_batch: Any, forget_ref: Tensor | None, denominators: Tensor | None,
    sink: dict[str, Tensor] | None = None, target: ForgetTarget = ASCENT,
) -> tuple[Callable[[], Tensor], Callable[[], Tensor]]:
    """The two closures of one step: retain CE, and the forget objective's value under the
    forget target (:mod:`.forget_target`: each token's loss capped at ``target.cap``, minus
    the empty continuation's loss).

    ``denominators`` (``[forget, retain]``, under ``torchrun``) replace each rank's token
    count in the token means (see :func:`mean_nll`). Each closure starts by resharding
    FSDP2 modules (a no-op otherwise), so that a forward after a GeN probe never reads stale
    gathered parameters. The forget closure leaves the per-example token-mean losses
    ``nll_i / n_i`` of its batch (detached; NaN where ``n_i = 0``) in ``sink["forget"]``, and
    the empty-continuation losses ``ℓ_i^∅`` in ``sink["empty"]`` when the target has them.
    """
    d_forget = None if denominators is None else denominators[0]
    d_retain = None if denominators is None else denominators[1]

    def closure_retain() -> Tensor:
        reshard_fsdp(model)
        nll, n = task.nll(model, retain_batch)
        return mean_nll(nll, n, d_retain)

    def closure_forget() -> Tensor:
        reshard_fsdp(model)
        nll, n, empty = target.score(task, model, forget_batch)
        if sink is not None:
            sink["forget"] = nll.detach() / n.detach()
            if empty is not None:
                sink["empty"] = empty.detach()
        return with_empty(objective(nll, n, forget_ref, d_forget), empty)

    return closure_retain, closure_forget


def _divergence_advice(config: UnlearnConfig) -> str:
    if config.autolr:
        return "AutoLR was on: try a smaller initial --lr or a smaller --autolr-scale"
    return "Try a smaller --lr, or turn AutoLR on (--autolr)"


LEGACY_SETTINGS: dict[str, Any] = {"forget_target": "ascent", "stop_gap": None,
                                   "retain_check": None}
"""What a checkpoint written before these settings existed ran with (it is compared with
these, not with today's defaults, when it is resumed)."""


class _Run:
    """One call of :func:`unlearn`: the data, the optimizer and the run's state."""

    def __init__(self, model: nn.Module, forget: Any, retain: Any, config: UnlearnConfig,
                 evaluate: Evaluator | None, callbacks: Sequence[StepCallback],
                 checkpoint_dir: str | Path | None, task: Task | None, tokenizer: Any,
                 rule: StepCallback | None = None) -> None:
        self.config = config
        self.spec = get_method(config.method)
        self.objective = get_objective(self.spec.objective, **config.objective_options)
        self.forget = _as_dataset(forget, tokenizer, config.max_length, "forget")
        self.retain = _as_dataset(retain, tokenizer, config.max_length, "retain")
        self.model = _with_lora(model, config)
        self.task = task or self._infer_task(tokenizer)
        self.target = resolve_forget_target(config, self.task, self.model,
                                            self.task.collate([self.forget[0]]))
        reshard_fsdp(self.model)  # output_size may have run a forward
        self.evaluate_hook, self.callbacks, self.rule = evaluate, list(callbacks), rule
        self.retain_check: RetainCheck | None = None
        if config.retain_check is not None and hasattr(self.task, "agreement"):
            self.retain_check = RetainCheck(config.retain_repair_steps,
                                            config.retain_repair_rounds)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.selection = parse_keep_best(config.keep_best) if config.keep_best else None
        self.world, self.rank = fdist.world_size(), fdist.rank()
        self.per_epoch = steps_per_epoch(len(self.forget), config.batch_size)
        self.total = self.per_epoch * config.epochs
        check_shardable(len(self.forget), len(self.retain), config.batch_size,
                        config.effective_retain_batch_size, self.world)
        self.optimizer = NGDiffOptimizer(
            [p for p in self.model.parameters() if p.requires_grad], **optimizer_kwargs(config)
        )
        self.record = self._config_record()
        self.step_count = 0
        self.ended = False  # the run has ended (not paused): a resumed one takes no step
        self.history: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.best_state: dict[str, Any] | None = None
        self.ref_nll: Tensor | None = None
        self._plans: dict[int, EpochPlan] = {}

    def _infer_task(self, tokenizer: Any) -> Task:
        pad, eos = special_token_ids(_unwrapped(self.model), tokenizer)
        return infer_task(self.forget[0], pad, eos)

    def _config_record(self) -> dict[str, Any]:
        """The configuration compared on resume (run settings, data fingerprints, world)."""
        record = {k: v for k, v in self.config.record().items() if k not in RUN_CONTROL_FIELDS}
        record.update(
            method=self.spec.name, rule=self.spec.rule, rule_options=dict(self.spec.rule_options),
            objective=self.objective.describe(), n_forget=len(self.forget),
            n_retain=len(self.retain), forget_fingerprint=data_fingerprint(self.forget),
            retain_fingerprint=data_fingerprint(self.retain), world_size=int(self.world),
        )
        return record

    # ------------------------------------------------------------------ resume
    def restore(self, resume: bool) -> None:
        """Load the checkpoint when resuming; refuse an existing one otherwise."""
        folder = self.checkpoint_dir
        if folder is not None and checkpoint_exists(folder):
            if not resume:
                raise FileExistsError(
                    f"{folder / CHECKPOINT_NAME} already exists: continue it with --resume "
                    "(resume=True in Python) or choose another folder"
                )
            self._load(load_checkpoint(folder))  # type: ignore[arg-type]

    def _prepare(self) -> None:
        """What a new run measures on the model before its first step, in eval mode (called
        by :meth:`execute`; a resumed run has both from its checkpoint): NPO's reference
        NLLs, and the retain examples the model reproduces."""
        if self.objective.needs_reference and self.ref_nll is None:
            self.ref_nll = _reference_nll(self.model, self.task, self.forget,
                                          self.config.batch_size)
        check = self.retain_check
        if check is not None and self.step_count == 0 and not check.kept:
            assert self.config.retain_check is not None
            check.start(self.model, self.task, self.retain, self.config.retain_check,
                        self.config.seed, self.config.effective_retain_batch_size)

    def _load(self, saved: dict[str, Any]) -> None:
        saved_world = int(saved["config"].get("world_size", 1))
        if saved_world != self.world:
            raise UsageError(
                f"cannot resume: the checkpoint in {self.checkpoint_dir} was written by a run "
                f"on {saved_world} process(es) (world size {saved_world}), this run has world "
                f"size {self.world}. Each rank's share of every batch depends on the world "
                f"size: resume with {saved_world} process(es) or start a new run in another "
                "folder"
            )
        diffs = config_mismatch({"world_size": 1, **saved["config"]}, self.record,
                                {**UnlearnConfig().record(), **LEGACY_SETTINGS})
        if diffs:
            raise UsageError(
                "cannot resume: the checkpoint was made with another configuration or other "
                "data:\n  " + "\n  ".join(diffs)
            )
        load_full_model_state(self.model, saved["model"])
        load_optimizer_state(self.optimizer, saved["optimizer"])
        self.step_count = int(saved["step"])
        self.history, self.evals = list(saved["history"]), list(saved["evals"])
        self.ended = bool(saved.get("ended", False))
        self.ref_nll = saved["ref_nll"]
        self.best = saved.get("best")
        if self.best is not None and self.checkpoint_dir is not None \
                and not (self.checkpoint_dir / BEST_NAME).exists():
            raise InputError(
                f"{self.checkpoint_dir / BEST_NAME} (the best evaluation so far) is missing; "
                "start the run over"
            )
        if self.retain_check is not None and saved.get("retain_check") is not None:
            self.retain_check.load_state_dict(saved["retain_check"])
        rng_ranks = saved.get("rng_ranks")
        set_rng_state(rng_ranks[self.rank] if rng_ranks is not None else saved["rng"])

    # ------------------------------------------------------------------ one step
    def _plan(self, epoch: int) -> EpochPlan:
        if epoch not in self._plans:
            self._plans.clear()
            self._plans[epoch] = epoch_plan(
                self.config.seed, epoch, len(self.forget), len(self.retain),
                self.config.batch_size, self.config.effective_retain_batch_size,
            )
        return self._plans[epoch]

    def _denominators(self, f_batch: Any, r_batch: Any) -> Tensor | None:
        """Under ``torchrun``: ``[N_forget, N_retain] / W`` with N the batch's target count
        over every rank (one all_reduce of 2 numbers); None in one process."""
        if self.world == 1:
            return None
        counts = torch.stack([self.task.target_count(f_batch), self.task.target_count(r_batch)])
        device = next(self.model.parameters()).device
        return fdist.sum_over_ranks(counts.to(device)) / self.world

    def step(self) -> dict[str, Any]:
        """One optimizer step on the next pair of batches; returns its history record.
        Raises UnlearningDiverged when the optimizer skipped the step (non-finite values)."""
        epoch, position = divmod(self.step_count, self.per_epoch)
        batch_idx, r_idx = self._plan(epoch)[position]
        repair = 0
        if self.retain_check is not None and self.retain_check.repairing:
            r_idx, repair = self.retain_check.repair_batch(r_idx)
        f_idx = batch_idx
        if self.world > 1:  # this rank's equal share of both batches
            f_idx = rank_share(batch_idx, self.rank, self.world)
            r_idx = rank_share(r_idx, self.rank, self.world)
        f_batch = self.task.collate([self.forget[i] for i in f_idx])
        r_batch = self.task.collate([self.retain[i] for i in r_idx])
        f_ref = self.ref_nll[torch.tensor(f_idx)] if self.ref_nll is not None else None
        sink: dict[str, Tensor] = {}
        closures = _closures(self.model, self.task, self.objective, r_batch, f_batch, f_ref,
                             self._denominators(f_batch, r_batch), sink, self.target)
        stats = self.optimizer.step(*closures).as_dict()
        reshard_fsdp(self.model)
        if stats["skipped"]:
            self._diverged(stats, epoch)
        self.step_count += 1
        entry = {"step": self.step_count, "epoch": epoch + 1,
                 **{k: stats[k] for k in _HISTORY_KEYS},
                 "retain_repair": repair,
                 **({"forget_cap": self.target.cap} if self.target.cap is not None else {}),
                 "forget_indices": [int(i) for i in batch_idx]}
        per_example = {"forget_losses": sink["forget"]}
        if "empty" in sink:
            per_example["forget_empty"] = sink["empty"]
        local = torch.stack([v.float() for v in per_example.values()])
        entry.update(zip(per_example, self._batch_losses(local, len(batch_idx))))
        self.history.append(entry)
        return entry

    def _batch_losses(self, local: Tensor, size: int) -> list[list[float]]:
        """Per-example values ``[k, local batch]`` (the forget losses, and the empty
        continuations' when the target has them) of the whole batch (``size`` examples):
        this rank's share ``rank::W`` gathered over the ranks under ``torchrun`` (one
        all_reduce of ``k·size`` numbers, one copy to the host)."""
        if self.world == 1:
            return local.float().cpu().tolist()  # type: ignore[no-any-return]
        full = torch.zeros(local.shape[0], size, dtype=torch.float32, device=local.device)
        full[:, self.rank::self.world] = local.float()
        return fdist.sum_over_ranks(full).cpu().tolist()  # type: ignore[no-any-return]

    def _diverged(self, stats: Mapping[str, Any], epoch: int) -> None:
        folder = self.checkpoint_dir
        kept = folder is not None and checkpoint_exists(folder)
        where = f"; the last good checkpoint is in {folder}" if kept else ""
        raise UnlearningDiverged(
            f"{self.spec.name}: the run diverged at step {self.step_count + 1} (epoch "
            f"{epoch + 1}): {stats['skip_reason']} (retain loss {stats['loss_retain']}, forget "
            f"objective {stats['loss_forget']}){where}. {_divergence_advice(self.config)}.",
            step=self.step_count, model_finite=params_finite(self.model),
            checkpoint_dir=folder if kept else None,
        )

    # ------------------------------------------------------------------ checkpoint
    def checkpoint(self) -> None:
        """Write the whole run (skipped when a parameter is not finite). Under ``torchrun``
        every rank takes part in gathering the state; rank 0 alone writes the file and the
        others learn whether it succeeded (a failed write fails every rank)."""
        if self.checkpoint_dir is None or not params_finite(self.model):
            return
        model_state = full_model_state(self.model)
        optim_state = optimizer_state(self.optimizer)  # a collective with FSDP2 moments
        rng_states = all_rng_states()
        folder = self.checkpoint_dir

        def write() -> None:
            assert rng_states is not None
            save_checkpoint(folder, {
                "format": 1, "config": self.record, "step": self.step_count,
                "model": model_state, "optimizer": optim_state,
                "data_order": self._plan(min(self.step_count // self.per_epoch,
                                             self.config.epochs - 1)),
                "ref_nll": self.ref_nll, "rng": rng_states[0],
                "rng_ranks": rng_states if self.world > 1 else None,
                "history": self.history, "evals": self.evals, "best": self.best,
                "ended": self.ended,
                "retain_check": (None if self.retain_check is None
                                 else self.retain_check.state_dict()),
            })

        fdist.on_rank0(write, "could not write the checkpoint")

    # ------------------------------------------------------------------ evaluate
    def evaluate(self) -> None:
        """Record ``evaluate(model)`` at this step; with ``keep_best``, keep the model state
        when the selection's score improves (decided on rank 0, followed by every rank)."""
        if self.evaluate_hook is None:
            return
        metrics = _clean_metrics(self.evaluate_hook(self.model))
        self.model.eval()
        record = {"step": self.step_count, **metrics}
        self.evals.append(record)
        if self.selection is None:
            return
        score = self.selection.score(metrics)
        improved = fdist.broadcast_from_rank0(
            self.selection.better(score, None if self.best is None else self.best["score"])
        )
        if not improved:
            return
        self.best = {"step": self.step_count, "score": score, "selection": self.selection.text,
                     "metrics": metrics}
        state = full_model_state(self.model)
        if self.checkpoint_dir is None:
            self.best_state = state if fdist.is_main() else None
            return
        folder = self.checkpoint_dir
        fdist.on_rank0(lambda: save_verified(folder / BEST_NAME, {"model": state,
                                                                   "best": self.best}),
                       "could not write the best model state")

    # ------------------------------------------------------------------ the run
    @property
    def _repairing(self) -> bool:
        """A repair round of the retain check has steps left."""
        return self.retain_check is not None and self.retain_check.repairing

    def _after_step(self, entry: dict[str, Any]) -> None:
        """Callbacks, the stopping rule and the retain check, then evaluation (every
        ``eval_every`` steps and at the end) and checkpoints (every ``checkpoint_every``
        steps and at the end); sets ``ended`` when the run ends here.

        The end: a callback or the check stops the run, or the epoch limit is reached with
        no repair round under way. From the limit on, a round runs to its end and the check
        follows a round that has ended without waiting for the rule (the limit has already
        said stop)."""
        stop = False
        for callback in self.callbacks:
            if callback(entry):
                stop = True
        fired = self.rule is not None and self.rule(entry)
        at_limit = self.step_count >= self.total
        round_over = self.retain_check is not None and self.retain_check.round_over
        if (fired or (at_limit and round_over)) and not stop:
            stop = self._retain_check_stops()
        self.ended = stop or (at_limit and not self._repairing)
        step, every = self.step_count, self.config.eval_every
        if self.ended or (every is not None and step % every == 0):
            self.evaluate()
        if self.ended or step % (self.config.checkpoint_every or self.per_epoch) == 0:
            self.checkpoint()

    def _retain_check_stops(self) -> bool:
        """The stopping rule fired, or a round ended at or past the epoch limit: True to stop
        (no retain check, or the check lets the run stop). A repair round that starts here
        begins from a cleared momentum
        (:meth:`fastngd.NGDiffOptimizer.reset_momentum`): its steps follow the repair batches,
        not the running average of the unlearning steps before it."""
        check = self.retain_check
        if check is None:
            return True
        rounds = check.rounds_done
        stop = check.on_stop(self.step_count, self.model, self.task, self.retain,
                             self.config.effective_retain_batch_size)
        if check.rounds_done > rounds:
            self.optimizer.reset_momentum()
        return stop

    def execute(self, progress: bool) -> UnlearnResult:
        """Run the remaining steps; returns the result."""
        from fastngd.models.lora import trainable_memory

        start = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        bar = tqdm(total=self.total, initial=self.step_count, desc=f"unlearn {self.spec.name}",
                   disable=not progress, leave=False)
        max_steps = self.config.max_steps
        try:
            self._prepare()
            if self.step_count == 0 and not self.evals:
                self.evaluate()
            paused = False
            while not self.ended and (self.step_count < self.total or self._repairing):
                if max_steps is not None and self.step_count >= max_steps:
                    paused = True
                    self.checkpoint()  # a pause (with checkpoint_dir): resume=True goes on
                    break
                entry = self.step()
                bar.update(1)
                bar.set_postfix(L_R=f"{entry['loss_retain']:.3f}",
                                L_F=f"{entry['loss_forget']:.3f}", lr=f"{entry['lr']:.3g}")
                self._after_step(entry)
            completed = not paused and self.step_count >= self.total
        finally:
            bar.close()
            self.model.train(was_training)
        best_path = None
        if self.best is not None and self.checkpoint_dir is not None:
            best_path = self.checkpoint_dir / BEST_NAME
        return UnlearnResult(
            model=self.model, config=self.config, history=self.history, evals=self.evals,
            steps=self.step_count, wall_seconds=time.perf_counter() - start,
            completed=completed, best=self.best,
            memory=trainable_memory(self.model, self.config.retain_storage),
            retain_check=None if self.retain_check is None else self.retain_check.summary(),
            _best_state=self.best_state, _best_path=best_path,
        )


def _resolve_config(config: UnlearnConfig | str | None, settings: Mapping[str, Any]) -> UnlearnConfig:
    if isinstance(config, str):
        settings = {"method": config, **settings}
        config = None
    if config is not None and not isinstance(config, UnlearnConfig):
        raise TypeError(f"config must be an UnlearnConfig, got {type(config).__name__}")
    base = config or UnlearnConfig()
    try:
        resolved = base.replace(**settings)
    except UsageError as exc:
        raise TypeError(f"unlearn() got {exc}") from exc
    resolved.validate()
    return resolved


def unlearn(
    model: nn.Module,
    forget: Any,
    retain: Any,
    config: UnlearnConfig | str | None = None,
    *,
    evaluate: Evaluator | None = None,
    callbacks: Sequence[StepCallback] = (),
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    task: Task | None = None,
    tokenizer: Any = None,
    progress: bool = False,
    **settings: Any,
) -> UnlearnResult:
    """Unlearn ``forget`` from ``model`` while keeping ``retain``; updates ``model`` in place.

    Args:
        model: a causal LM (Hugging Face style: ``model(input_ids=..., attention_mask=...)
            .logits``) or a classifier (``model(x)`` → logits).
        forget, retain: datasets of encoded examples (e.g. :class:`fastngd.data.QADataset`),
            of ``(x, y)`` pairs, or lists of QA rows (``question``/``answer``) and raw-text
            rows (``text``), in any mix (then pass ``tokenizer``; they are encoded with
            ``config.max_length`` by :func:`fastngd.data.rows_dataset`).
        config: every run setting (:class:`UnlearnConfig`; default ``UnlearnConfig()``). A
            string is a method name (``unlearn(m, f, r, "npo", epochs=3)``).
        evaluate: ``evaluate(model)`` → metrics, recorded at step 0, every
            ``config.eval_every`` steps and at the end; with ``config.keep_best`` the best
            evaluation's model state is kept (:meth:`UnlearnResult.best_state`).
        callbacks: called after every step with the step record; returning True stops.
            The stopping rule of ``config`` (:func:`stopping_rule`; on resume it is
            replayed over the saved history first) runs after them; when it fires, the
            retain check of ``config.retain_check`` (:mod:`.retain_check`) decides whether
            the run stops or first repairs retain examples it broke.
        checkpoint_dir, resume: whole-run checkpoints (every ``config.checkpoint_every``
            steps, default every epoch, and at the end). A folder that already holds a
            checkpoint is refused unless ``resume=True`` (which starts afresh when the
            folder holds none); resuming with another
            configuration, other data or another world size is refused, and a checkpoint
            that fails its checksum is refused with a :class:`fastngd.errors.InputError`.
            Under ``torchrun`` rank 0 writes the (gathered) checkpoint while the others
            wait; every rank reads it on resume, so the folder must be shared by all ranks.
        task: how to batch and score examples (inferred from the first example).
        tokenizer: encodes rows (and gives the pad id when the model has none).
        progress: show a tqdm progress bar.
        **settings: fields of :class:`UnlearnConfig` overriding ``config`` (``epochs=3``).

    Raises:
        UnlearningDiverged: a loss became non-finite (its ``step`` and ``model_finite`` say
            what is left; the last good checkpoint stays in ``checkpoint_dir``).
        fastngd.errors.UsageError: bad settings (a ``ValueError``); resuming another run.
        FileExistsError: ``checkpoint_dir`` holds a checkpoint and ``resume`` is False.
        fastngd.errors.InputError: a damaged checkpoint.
        TypeError: an unknown setting.
    """
    resolved = _resolve_config(config, settings)
    if resume and checkpoint_dir is None:
        raise UsageError("resume=True needs checkpoint_dir")
    if resolved.keep_best is not None and evaluate is None:
        raise UsageError("keep_best needs an evaluate hook (evaluate=...) that returns its metric")
    rule = stopping_rule(resolved)
    run = _Run(model, forget, retain, resolved, evaluate, callbacks, checkpoint_dir, task,
               tokenizer, rule)
    run.restore(resume)
    if rule is not None:  # a resumed run's rule continues from the saved history
        for entry in run.history:
            rule(entry)
    return run.execute(progress)


"""``NGDiffTrainer``: NGDiff (or any rule of :mod:`fastngd.rules`) unlearning inside a
Hugging Face ``transformers.Trainer``.

The Trainer iterates over ``train_dataset``, which is the **forget** set (an epoch is one pass
over it); every forget batch is paired with the next batch of ``retain_dataset`` (cycled,
reshuffled by the retain dataloader's sampler each pass) and one step of
:class:`fastngd.NGDiffOptimizer` is made:

    L_R = retain_loss(model, retain batch)      (decreased)
    L_F = forget_loss(model, forget batch)      (increased)
    θ ← θ − η·(w_R·∇L_R − w_F·∇L_F)             (w from the rule, η = lr × GeN scale)

:meth:`NGDiffTrainer.training_step` builds both closures and calls
``optimizer.step(closure_retain, closure_forget)``; the optimizer runs the two backward passes
itself. The Trainer's own later ``optimizer.step()`` of that step is a no-op (see
:class:`TrainerNGDiffOptimizer`), so parameters move exactly once per step; gradient
clipping (``max_grad_norm``) and ``weight_decay`` do not apply.

Logged every ``logging_steps`` (means over the steps since the last log, skipped steps left
out of the means): ``retain_loss``, ``forget_loss``, ``retain_grad_norm``,
``forget_grad_norm``, ``grad_cosine``, ``weight_retain``, ``weight_forget``, plus the current
``lr_scale`` (the GeN multiplier of ``learning_rate``) and ``skipped_steps``. The Trainer's
own ``loss`` is the retain loss.

Distributed runs (``torchrun``): DDP is tested; for FSDP2 (``fully_shard``) models the closures
call :func:`fastngd.distributed.reshard_fsdp` so FSDP2 never computes with gathered parameter
copies that predate the optimizer's in-place update of the shards (GeN probes).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import Tensor, nn
from transformers import Trainer

from fastngd.distributed import reshard_fsdp
from fastngd.optimizer import NGDiffOptimizer
from fastngd.stats import StepStats

__all__ = ["LossFn", "NGDiffTrainer", "TrainerNGDiffOptimizer"]

LossFn = Callable[[nn.Module, dict[str, Any]], Tensor]
"""``loss_fn(model, inputs) -> scalar loss``; ``inputs`` is a collated batch on the device."""

_LOG_KEYS = (
    "retain_loss", "forget_loss", "retain_grad_norm", "forget_grad_norm", "grad_cosine",
    "weight_retain", "weight_forget",
)


class TrainerNGDiffOptimizer(NGDiffOptimizer):
    """:class:`~fastngd.NGDiffOptimizer` whose argument-less :meth:`step` right after a step
    made with closures returns that step's statistics instead of stepping again.

    ``transformers.Trainer`` (through ``accelerate``) calls ``optimizer.step()`` after every
    ``training_step``; :class:`NGDiffTrainer` has already made the step there. Any other
    argument-less call behaves as in :class:`~fastngd.NGDiffOptimizer` (a step on gradients
    computed by the caller).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: StepStats | None = None

    def step(  # type: ignore[override]
        self,
        closure_retain: Callable[[], Tensor] | None = None,
        closure_forget: Callable[[], Tensor] | None = None,
    ) -> StepStats:
        """With both closures: one unlearning step (remembered for the next argument-less
        call). Without arguments: the remembered step's statistics if there is one, else a
        step on caller-computed gradients."""
        if closure_retain is None and closure_forget is None and self._pending is not None:
            stats, self._pending = self._pending, None
            return stats
        self._pending = None
        stats = super().step(closure_retain, closure_forget)
        if closure_retain is not None:
            self._pending = stats
        return stats


def _unwrap_optimizer(opt: Any) -> TrainerNGDiffOptimizer | None:
    """The :class:`TrainerNGDiffOptimizer` inside wrappers such as accelerate's."""
    seen = 0
    while opt is not None and seen < 8:
        if isinstance(opt, TrainerNGDiffOptimizer):
            return opt
        opt = getattr(opt, "optimizer", None)
        seen += 1
    return None


class NGDiffTrainer(Trainer):
    """A ``transformers.Trainer`` that unlearns ``train_dataset`` (the forget set) while
    keeping ``retain_dataset``, with :class:`fastngd.NGDiffOptimizer`.

    Args:
        model, args: as for ``Trainer`` (``args.learning_rate`` is η, the initial rate when
            ``autolr``; ``lr_scheduler_type`` schedules it; ``per_device_train_batch_size``
            is the forget batch size).
        retain_dataset: the retain set (required); collated with the Trainer's
            ``data_collator``.
        retain_batch_size: retain examples per step and device (default: the forget batch
            size).
        rule, rule_options: the combine rule (``"ngdiff"`` by default; see
            :data:`fastngd.rules.RULES`).
        autolr, autolr_every: GeN automatic learning rate (fit every ``autolr_every`` steps).
        optimizer_kwargs: further keyword arguments of :class:`fastngd.NGDiffOptimizer`
            (``autolr_scale``, ``autolr_ema``, ``autolr_clip``, ``backend``,
            ``retain_storage``, ``seed``).
        forget_loss, retain_loss: ``loss_fn(model, inputs) -> scalar``; default the Trainer's
            ``compute_loss`` (the model's own loss, e.g. token cross-entropy with ``labels``).
            Pass e.g. an NPO loss as ``forget_loss``.
        deterministic: run both closures with the model in eval mode (no dropout), so the
            GeN probes of the retain loss evaluate the same function (default True).
        **trainer_kwargs: every other ``Trainer`` argument (``train_dataset``,
            ``data_collator``, ``eval_dataset``, ``callbacks``, ...), except ``optimizers``
            with an optimizer and ``optimizer_cls_and_kwargs``.

    Raises:
        ValueError: no ``retain_dataset``; ``gradient_accumulation_steps`` ≠ 1; ``fp16``
            loss scaling, DeepSpeed or ``nn.DataParallel`` (several GPUs in one process; use
            ``torchrun``); an optimizer passed in.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        args: Any = None,
        *,
        retain_dataset: Any = None,
        retain_batch_size: int | None = None,
        rule: str = "ngdiff",
        rule_options: dict[str, Any] | None = None,
        autolr: bool = True,
        autolr_every: int = 10,
        optimizer_kwargs: dict[str, Any] | None = None,
        forget_loss: LossFn | None = None,
        retain_loss: LossFn | None = None,
        deterministic: bool = True,
        **trainer_kwargs: Any,
    ) -> None:
        if retain_dataset is None:
            raise ValueError("NGDiffTrainer needs retain_dataset= (train_dataset is the forget set)")
        optimizers = trainer_kwargs.get("optimizers", (None, None))
        if optimizers is not None and optimizers[0] is not None:
            raise ValueError(
                "NGDiffTrainer builds its own NGDiffOptimizer; pass its settings (rule=, "
                "autolr=, optimizer_kwargs=) instead of optimizers="
            )
        if trainer_kwargs.get("optimizer_cls_and_kwargs") is not None:
            raise ValueError("NGDiffTrainer does not take optimizer_cls_and_kwargs; use optimizer_kwargs=")
        if retain_batch_size is not None and retain_batch_size < 1:
            raise ValueError(f"retain_batch_size must be positive, got {retain_batch_size}")
        reserved = {"params", "lr", "rule", "rule_options", "autolr", "autolr_every"}
        clash = reserved & set(optimizer_kwargs or {})
        if clash:
            raise ValueError(f"set {sorted(clash)} through NGDiffTrainer's own arguments")
        super().__init__(model=model, args=args, **trainer_kwargs)
        a = self.args
        if a.gradient_accumulation_steps != 1:
            raise ValueError(
                "NGDiffTrainer makes one NGDiff step per forget batch: set "
                "gradient_accumulation_steps=1 and use larger batches instead"
            )
        if a.fp16:
            raise ValueError("fp16 loss scaling is not supported by NGDiffTrainer; use bf16 or fp32")
        if getattr(a, "deepspeed", None):
            raise ValueError("NGDiffTrainer does not support DeepSpeed; use DDP or FSDP2")
        if a.n_gpu > 1:
            raise ValueError(
                "NGDiffTrainer does not support nn.DataParallel (several GPUs in one process); "
                "launch one process per GPU with torchrun"
            )
        if a.weight_decay:
            warnings.warn("NGDiffTrainer ignores weight_decay", stacklevel=2)
        self.retain_dataset = retain_dataset
        self.retain_batch_size = retain_batch_size
        self.ngdiff_settings: dict[str, Any] = dict(
            rule=rule, rule_options=rule_options, autolr=autolr, autolr_every=autolr_every,
            **(optimizer_kwargs or {}),
        )
        self.forget_loss_fn = forget_loss
        self.retain_loss_fn = retain_loss
        self.deterministic = bool(deterministic)
        self.last_step_stats: StepStats | None = None
        self._retain_loader: Any = None
        self._retain_iter: Any = None
        self._retain_pass = 0
        self._log_sums: Tensor | None = None
        self._log_counts: Tensor | None = None
        self._log_skipped: Tensor | None = None

    # ------------------------------------------------------------------ optimizer
    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """A :class:`TrainerNGDiffOptimizer` over every trainable parameter, ``lr =
        args.learning_rate`` (one parameter group)."""
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            if opt_model is None:
                raise ValueError("NGDiffTrainer needs a model")
            params = [p for p in opt_model.parameters() if p.requires_grad]
            if not params:
                raise ValueError("the model has no trainable parameter")
            self.optimizer = TrainerNGDiffOptimizer(
                params, lr=self.args.learning_rate, **self.ngdiff_settings
            )
        return self.optimizer

    @property
    def ngdiff_optimizer(self) -> TrainerNGDiffOptimizer:
        """The optimizer itself (unwrapped from accelerate's wrapper)."""
        opt = _unwrap_optimizer(self.optimizer)
        if opt is None:
            raise RuntimeError("the NGDiff optimizer does not exist yet (call train() first)")
        return opt

    # ------------------------------------------------------------------ retain data
    def get_retain_dataloader(self) -> Any:
        """The retain dataloader: like the training one (same collator, sampler, sharding over
        processes), with ``retain_batch_size`` examples per batch."""
        batch_size = self.retain_batch_size or self._train_batch_size
        if hasattr(self, "_get_dataloader"):
            return self._get_dataloader(
                dataset=self.retain_dataset, description="Retain", batch_size=batch_size,
                sampler_fn=self._get_train_sampler, is_training=True,  # type: ignore[arg-type]
            )
        forget, saved_bs = self.train_dataset, self._train_batch_size  # older transformers
        try:
            self.train_dataset, self._train_batch_size = self.retain_dataset, batch_size
            return self.get_train_dataloader()
        finally:
            self.train_dataset, self._train_batch_size = forget, saved_bs

    def _next_retain_batch(self) -> dict[str, Any]:
        if self._retain_loader is None:
            self._retain_loader = self.get_retain_dataloader()
        for _ in range(2):
            if self._retain_iter is None:
                if hasattr(self._retain_loader, "set_epoch"):
                    self._retain_loader.set_epoch(self._retain_pass)
                self._retain_iter = iter(self._retain_loader)
            try:
                return next(self._retain_iter)
            except StopIteration:
                self._retain_iter = None
                self._retain_pass += 1
        raise ValueError("the retain dataloader yields no batch (empty retain_dataset?)")

    # ------------------------------------------------------------------ the step
    def _task_loss(self, fn: LossFn | None, model: nn.Module, inputs: dict[str, Any]) -> Tensor:
        loss: Any
        batch = dict(inputs)  # compute_loss may pop keys; closures are called again by GeN
        reshard_fsdp(model)  # FSDP2: never run on gathered copies older than the shards
        with self.compute_loss_context_manager():
            if fn is not None:
                loss = fn(model, batch)
            else:
                loss = self.compute_loss(model, batch)
        if isinstance(loss, tuple):
            loss = loss[0]
        return loss

    def training_step(  # type: ignore[override]
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        num_items_in_batch: Any = None,
    ) -> Tensor:
        """One NGDiff step on this forget batch and the next retain batch.

        Builds ``closure_retain`` (retain loss) and ``closure_forget`` (forget loss) and calls
        ``optimizer.step(closure_retain, closure_forget)``, which runs both backward passes
        and updates the parameters; no backward is left for the Trainer. Returns the
        (rank-averaged) retain loss, detached, which the Trainer logs as ``loss``.
        """
        opt = self.ngdiff_optimizer
        forget_inputs = self._prepare_inputs(inputs)
        retain_inputs = self._prepare_inputs(self._next_retain_batch())
        was_training = model.training
        model.train(not self.deterministic)

        def closure_retain() -> Tensor:
            return self._task_loss(self.retain_loss_fn, model, retain_inputs)

        def closure_forget() -> Tensor:
            return self._task_loss(self.forget_loss_fn, model, forget_inputs)

        try:
            stats = opt.step(closure_retain, closure_forget)
        finally:
            model.train(was_training)
            reshard_fsdp(model)  # leave no gathered copy of pre-update values (GeN probes)
        self.last_step_stats = stats
        self._accumulate(stats)
        return stats.loss_retain.detach().to(self.args.device, torch.float32)

    # ------------------------------------------------------------------ logging
    def _accumulate(self, stats: StepStats) -> None:
        values = torch.stack([
            stats.loss_retain, stats.loss_forget, stats.norm_retain, stats.norm_forget,
            stats.cosine, stats.weight_retain, stats.weight_forget,
        ]).detach().to(torch.float64)
        usable = torch.isfinite(values) & ~stats.skipped
        zero = torch.zeros_like(values)
        if self._log_sums is None or self._log_counts is None or self._log_skipped is None \
                or self._log_sums.device != values.device:
            self._log_sums, self._log_counts = zero.clone(), zero.clone()
            self._log_skipped = torch.zeros((), dtype=torch.int64, device=values.device)
        self._log_sums += torch.where(usable, values, zero)
        self._log_counts += usable.to(values.dtype)
        self._log_skipped += stats.skipped.to(torch.int64)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """The Trainer's ``log``, with the NGDiff statistics added to training logs."""
        if "loss" in logs and self._log_sums is not None:
            sums, counts = self._log_sums.tolist(), self._log_counts.tolist()  # type: ignore[union-attr]
            for key, s, n in zip(_LOG_KEYS, sums, counts):
                logs[key] = s / n if n else float("nan")
            logs["skipped_steps"] = int(self._log_skipped)  # type: ignore[arg-type]
            opt = _unwrap_optimizer(self.optimizer)
            if opt is not None:
                logs["lr_scale"] = float(opt.lr_scale)
            self._log_sums = self._log_counts = self._log_skipped = None
        super().log(logs, *args, **kwargs)

    def _clip_grad_norm(self, model: nn.Module) -> None:
        """No clipping: the step is already made (``max_grad_norm`` does not apply)."""
        return

    def _get_grad_norm(self, model: nn.Module, grad_norm: Any = None) -> None:
        """No ``grad_norm`` log (no gradient is left); see ``retain_grad_norm`` and
        ``forget_grad_norm``."""
        return

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

Gradient accumulation (``gradient_accumulation_steps = k > 1``): the k forget micro-batches
of an optimizer step and k retain micro-batches are kept until the last one arrives; then
``g_R`` is accumulated over the retain micro-batches (``Σ_i ∇L_R,i / k``), stashed
(:meth:`fastngd.NGDiffOptimizer.stash_retain_grad`), ``g_F`` accumulated the same way, and
one :meth:`~fastngd.NGDiffOptimizer.step_from_grads` makes the step (GeN probes the mean
retain loss over the k micro-batches). Under DDP only the last backward of each task
synchronises.

fp16 (``args.fp16``): both tasks' losses are multiplied by the same dynamic loss scale
before their backward passes and the gradients divided by it before the combine rule
(:class:`fastngd.integrations.loss_scale.DynamicLossScaler`); a step with an overflowing
gradient is skipped and the scale halved. The scale is part of the optimizer's
``state_dict`` (and so of the Trainer's checkpoints).

Settings come from :class:`fastngd.unlearn.UnlearnConfig` (``config=``; its defaults
otherwise): the method's rule, GeN, backend and seed, ``optimizer_options`` and
``lora_rank`` (LoRA adapters through ``peft``: only the adapters are trained).

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

import contextlib
import warnings
from typing import Any, Callable

import torch
from torch import Tensor, nn
from transformers import Trainer

from fastngd.distributed import reshard_fsdp
from fastngd.errors import UsageError
from fastngd.integrations.loss_scale import DynamicLossScaler
from fastngd.optimizer import NGDiffOptimizer
from fastngd.stats import StepStats
from fastngd.unlearn.config import UnlearnConfig, optimizer_kwargs

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
        #: the fp16 loss scaler of :class:`NGDiffTrainer` (None without fp16).
        self.loss_scaler: DynamicLossScaler | None = None

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

    def remember(self, stats: StepStats) -> None:
        """Make the next argument-less :meth:`step` return ``stats`` (a step made through
        :meth:`step_from_grads`)."""
        self._pending = stats

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's ``state_dict``, with the loss scaler's state under
        ``"loss_scale"`` when fp16 loss scaling is on."""
        sd = super().state_dict()
        if self.loss_scaler is not None:
            sd["loss_scale"] = self.loss_scaler.state_dict()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        state_dict = dict(state_dict)
        scale = state_dict.pop("loss_scale", None)
        if scale is not None and self.loss_scaler is not None:
            self.loss_scaler.load_state_dict(scale)
        super().load_state_dict(state_dict)


def _refuse_loss(model: nn.Module, tokenizer: Any) -> LossFn:
    """The ``"refuse"`` forget loss (:func:`fastngd.unlearn.forget_target.refuse_forget_loss`)
    with the pad and EOS ids of :func:`fastngd.unlearn.tasks.special_token_ids`."""
    from fastngd.unlearn.forget_target import refuse_forget_loss
    from fastngd.unlearn.tasks import special_token_ids

    pad, eos = special_token_ids(model, tokenizer)
    return refuse_forget_loss(0 if pad is None else int(pad), eos)


def _objective(config: UnlearnConfig) -> str:
    from fastngd.unlearn.methods import get_method

    return get_method(config.method).objective


def _unwrap_optimizer(opt: Any) -> TrainerNGDiffOptimizer | None:
    """The :class:`TrainerNGDiffOptimizer` inside wrappers such as accelerate's."""
    seen = 0
    while opt is not None and seen < 8:
        if isinstance(opt, TrainerNGDiffOptimizer):
            return opt
        opt = getattr(opt, "optimizer", None)
        seen += 1
    return None


def _trainer_settings(
    config: UnlearnConfig | None, rule: str | None, rule_options: dict[str, Any] | None,
    autolr: bool | None, autolr_every: int | None, extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """Keyword arguments of the optimizer (without ``lr``): ``config``'s (default
    :class:`UnlearnConfig`), overridden by the explicit arguments."""
    base = config or UnlearnConfig()
    base.validate()
    reserved = {"params", "lr", "rule", "rule_options", "autolr", "autolr_every"}
    clash = reserved & set(extra or {})
    if clash:
        raise ValueError(f"set {sorted(clash)} through NGDiffTrainer's own arguments")
    settings = optimizer_kwargs(base)
    settings.pop("lr")
    if rule is not None:
        settings["rule"], settings["rule_options"] = rule, dict(rule_options or {})
    elif rule_options is not None:
        settings["rule_options"] = dict(rule_options)
    if autolr is not None:
        settings["autolr"] = autolr
        settings["step_size"] = base.step_size if autolr else "fixed"
    if autolr_every is not None:
        settings["autolr_every"] = autolr_every
    settings.update(extra or {})
    return settings


class NGDiffTrainer(Trainer):
    """A ``transformers.Trainer`` that unlearns ``train_dataset`` (the forget set) while
    keeping ``retain_dataset``, with :class:`fastngd.NGDiffOptimizer`.

    Args:
        model, args: as for ``Trainer`` (``args.learning_rate`` is η, the initial rate when
            ``autolr``; ``lr_scheduler_type`` schedules it; ``per_device_train_batch_size``
            is the forget batch size; ``gradient_accumulation_steps`` micro-batches make one
            step; ``fp16`` turns dynamic loss scaling on).
        retain_dataset: the retain set (required); collated with the Trainer's
            ``data_collator``.
        retain_batch_size: retain examples per micro-batch and device (default: the forget
            batch size).
        config: the run settings (:class:`fastngd.unlearn.UnlearnConfig`; default its
            defaults): the method's rule, GeN (``autolr``, ``autolr_every``,
            ``autolr_scale``...), ``backend``, ``retain_storage``, ``seed``,
            ``optimizer_options`` and ``lora_rank``/``lora_alpha``. Its epochs, batch sizes
            and lr are the Trainer's business (``args``).
        rule, rule_options, autolr, autolr_every: override ``config`` (e.g. ``rule="gdiff",
            rule_options={"c": 0.7}``).
        lora_rank: override ``config.lora_rank``: attach LoRA adapters (``peft``) to
            ``model``; only they are trained.
        optimizer_kwargs: further keyword arguments of :class:`fastngd.NGDiffOptimizer`.
        forget_loss, retain_loss: ``loss_fn(model, inputs) -> scalar``; default the Trainer's
            ``compute_loss`` (the model's own loss, e.g. token cross-entropy with ``labels``),
            except the forget loss of the cross-entropy methods under
            ``config.forget_target="refuse"`` (the default): then
            :func:`fastngd.unlearn.forget_target.refuse_forget_loss` (bounded ascent and the
            empty answer; ``"ascent"``: ``compute_loss``). Pass e.g. an NPO loss as
            ``forget_loss`` (required when ``config.method``'s forget objective is not
            cross-entropy).
        deterministic: run both closures with the model in eval mode (no dropout), so the
            GeN probes of the retain loss evaluate the same function (default True).
        **trainer_kwargs: every other ``Trainer`` argument (``train_dataset``,
            ``data_collator``, ``eval_dataset``, ``callbacks``, ...), except ``optimizers``
            with an optimizer and ``optimizer_cls_and_kwargs``.

    Raises:
        ValueError: no ``retain_dataset``; DeepSpeed or ``nn.DataParallel`` (several GPUs in
            one process; use ``torchrun``); an optimizer passed in; a method whose forget
            objective needs ``forget_loss``.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        args: Any = None,
        *,
        retain_dataset: Any = None,
        retain_batch_size: int | None = None,
        config: UnlearnConfig | None = None,
        rule: str | None = None,
        rule_options: dict[str, Any] | None = None,
        autolr: bool | None = None,
        autolr_every: int | None = None,
        lora_rank: int | None = None,
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
                "NGDiffTrainer builds its own NGDiffOptimizer; pass its settings (config=, "
                "rule=, autolr=, optimizer_kwargs=) instead of optimizers="
            )
        if trainer_kwargs.get("optimizer_cls_and_kwargs") is not None:
            raise ValueError("NGDiffTrainer does not take optimizer_cls_and_kwargs; use optimizer_kwargs=")
        if retain_batch_size is not None and retain_batch_size < 1:
            raise ValueError(f"retain_batch_size must be positive, got {retain_batch_size}")
        config = (config or UnlearnConfig()).replace(lora_rank=lora_rank)
        self.ngdiff_settings: dict[str, Any] = _trainer_settings(
            config, rule, rule_options, autolr, autolr_every, optimizer_kwargs)
        if forget_loss is None and rule is None and _objective(config) != "ce":
            raise UsageError(
                f"method {config.method!r} unlearns with the {_objective(config)} objective: "
                "pass it as forget_loss="
            )
        if forget_loss is None and config.bounded_target and model is not None:
            forget_loss = _refuse_loss(model, trainer_kwargs.get("processing_class"))
        if model is not None and config.lora_rank is not None:
            from fastngd.models.lora import apply_lora

            model = apply_lora(model, config.lora_rank, alpha=config.lora_alpha,
                               target_modules=config.lora_target_modules, seed=config.seed)
        super().__init__(model=model, args=args, **trainer_kwargs)
        self._check_args()
        self.unlearn_config = config
        self.retain_dataset = retain_dataset
        self.retain_batch_size = retain_batch_size
        self.forget_loss_fn = forget_loss
        self.retain_loss_fn = retain_loss
        self.deterministic = bool(deterministic)
        self.last_step_stats: StepStats | None = None
        self._retain_loader: Any = None
        self._retain_iter: Any = None
        self._retain_pass = 0
        self._micro: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._log_sums: Tensor | None = None
        self._log_counts: Tensor | None = None
        self._log_skipped: Tensor | None = None
        if self.args.fp16:
            # the scaling happens inside our steps; accelerate must not wrap the optimizer
            # with its own GradScaler (it would find no gradient after our step)
            self.accelerator.scaler = None

    def _check_args(self) -> None:
        a = self.args
        if getattr(a, "deepspeed", None):
            raise ValueError("NGDiffTrainer does not support DeepSpeed; use DDP or FSDP2")
        if a.n_gpu > 1:
            raise ValueError(
                "NGDiffTrainer does not support nn.DataParallel (several GPUs in one process); "
                "launch one process per GPU with torchrun"
            )
        if a.weight_decay:
            warnings.warn("NGDiffTrainer ignores weight_decay", stacklevel=3)

    # ------------------------------------------------------------------ optimizer
    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """A :class:`TrainerNGDiffOptimizer` over every trainable parameter (only the LoRA
        adapters with ``lora_rank``), ``lr = args.learning_rate`` (one parameter group);
        with ``args.fp16`` it gets a :class:`DynamicLossScaler`."""
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            if opt_model is None:
                raise ValueError("NGDiffTrainer needs a model")
            params = [p for p in opt_model.parameters() if p.requires_grad]
            if not params:
                raise ValueError("the model has no trainable parameter")
            optimizer = TrainerNGDiffOptimizer(
                params, lr=self.args.learning_rate, **self.ngdiff_settings
            )
            if self.args.fp16:
                optimizer.loss_scaler = DynamicLossScaler(device=params[0].device)
            self.optimizer = optimizer
        return self.optimizer

    @property
    def ngdiff_optimizer(self) -> TrainerNGDiffOptimizer:
        """The optimizer itself (unwrapped from accelerate's wrapper)."""
        opt = _unwrap_optimizer(self.optimizer)
        if opt is None:
            raise RuntimeError("the NGDiff optimizer does not exist yet (call train() first)")
        return opt

    def memory_report(self) -> dict[str, Any]:
        """Parameter counts and the bytes of the optimizer's gradient buffers
        (:func:`fastngd.models.lora.trainable_memory`)."""
        from fastngd.models.lora import trainable_memory

        if self.model is None:
            raise ValueError("NGDiffTrainer has no model")
        return trainable_memory(self.model, self.ngdiff_settings.get("retain_storage", "exact"))

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
        """One NGDiff step on this forget batch and the next retain batch (with gradient
        accumulation: the micro-batch is kept until the last one of the step arrives).

        Without accumulation or fp16: builds ``closure_retain`` (retain loss) and
        ``closure_forget`` (forget loss) and calls ``optimizer.step(closure_retain,
        closure_forget)``, which runs both backward passes and updates the parameters; no
        backward is left for the Trainer. Returns the (rank-averaged) retain loss, detached,
        which the Trainer logs as ``loss`` (0 for the micro-batches before the last).
        """
        self._micro.append((self._prepare_inputs(inputs),
                            self._prepare_inputs(self._next_retain_batch())))
        if not self.accelerator.sync_gradients:
            return torch.zeros((), device=self.args.device)
        micro, self._micro = self._micro, []
        opt = self.ngdiff_optimizer
        was_training = model.training
        model.train(not self.deterministic)
        try:
            if len(micro) == 1 and opt.loss_scaler is None:
                forget_inputs, retain_inputs = micro[0]
                stats = opt.step(
                    lambda: self._task_loss(self.retain_loss_fn, model, retain_inputs),
                    lambda: self._task_loss(self.forget_loss_fn, model, forget_inputs),
                )
            else:
                stats = self._accumulated_step(opt, model, micro)
        finally:
            model.train(was_training)
            reshard_fsdp(model)  # leave no gathered copy of pre-update values (GeN probes)
        self.last_step_stats = stats
        self._accumulate(stats)
        return stats.loss_retain.detach().to(self.args.device, torch.float32)

    def _backward_mean(self, opt: TrainerNGDiffOptimizer, model: nn.Module, fn: LossFn | None,
                       batches: list[dict[str, Any]]) -> Tensor:
        """``Σ_i ∇(L_i / k)`` into ``.grad`` over the k ``batches`` (loss-scaled and unscaled
        with fp16; only the last backward synchronises under DDP); returns the mean loss."""
        k = len(batches)
        losses = []
        for i, batch in enumerate(batches):
            sync = i == k - 1 or not hasattr(model, "no_sync")
            with (contextlib.nullcontext() if sync else model.no_sync()):  # type: ignore[operator]
                loss = self._task_loss(fn, model, batch)
                if not loss.requires_grad:
                    raise ValueError("the loss does not depend on any trainable parameter")
                part = loss / k
                if opt.loss_scaler is not None:
                    part = opt.loss_scaler.scale_loss(part)
                part.backward()
            losses.append(loss.detach().float())
        return torch.stack(losses).mean()

    def _unscale(self, opt: TrainerNGDiffOptimizer) -> Tensor | None:
        if opt.loss_scaler is None:
            return None
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        return opt.loss_scaler.unscale_(grads)

    def _accumulated_step(self, opt: TrainerNGDiffOptimizer, model: nn.Module,
                          micro: list[tuple[dict[str, Any], dict[str, Any]]]) -> StepStats:
        """One step from gradients accumulated over the micro-batches (fp16: scaled)."""
        forget_batches = [f for f, _ in micro]
        retain_batches = [r for _, r in micro]
        opt.discard_retain_grad()
        model.zero_grad(set_to_none=True)

        @torch.no_grad()
        def closure_retain() -> Tensor:  # GeN probes: the mean retain loss, no backward
            return torch.stack([self._task_loss(self.retain_loss_fn, model, b).float()
                                for b in retain_batches]).mean()

        try:
            loss_retain = self._backward_mean(opt, model, self.retain_loss_fn, retain_batches)
            bad_retain = self._unscale(opt)
            opt.stash_retain_grad(loss_retain)
            loss_forget = self._backward_mean(opt, model, self.forget_loss_fn, forget_batches)
            bad_forget = self._unscale(opt)
        except BaseException:
            opt.discard_retain_grad()
            model.zero_grad(set_to_none=True)
            raise
        stats = opt.step_from_grads(loss_retain, loss_forget, closure_retain=closure_retain)
        if opt.loss_scaler is not None and bad_retain is not None and bad_forget is not None:
            opt.loss_scaler.update(bad_retain | bad_forget)
        opt.remember(stats)
        return stats

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

"""``NGDiffOptimizer``: two-task unlearning steps in three layers — direction, base update,
step size.

One step (see :meth:`NGDiffOptimizer.step`):

1. ``L_R = closure_retain()``, backward; the fresh ``p.grad`` *is* g_R and is moved into the
   optimizer state (no copy);
2. ``L_F = closure_forget()``, backward into a fresh ``p.grad`` = g_F;
3. the Gram scalars ``rr = ‖g_R‖², ff = ‖g_F‖², rf = g_R·g_F`` over every parameter
   (:mod:`fastngd.reduction`; one collective under ``torchrun``);
4. **direction**: the combine rule (:mod:`fastngd.rules`) gives ``(w_R, w_F)`` and
   ``d = w_R·g_R − w_F·g_F`` (or a per-coordinate SAGO mask);
5. the skip decision (:func:`fastngd.stats.skip_flags`): a NaN/Inf anywhere skips the step;
6. **base update** (:mod:`fastngd.bases`): ``u`` from ``d`` and the base's state (``u = d`` for
   ``"sgd"``; momentum; Adam/AdamW with torch's semantics);
7. **step size** (:mod:`fastngd.step_sizes`): ``θ ← θ − η·u`` with a fixed η, or η refitted
   by GeN from two probes of L_R along ``u`` (θ backed up in the then-free gradient buffer,
   restored bit-exactly).

Memory: besides the parameters and their one ``.grad``, exact mode holds one gradient-sized
buffer (g_R) and the base's state, GeN included; ``retain_storage="int8"`` stores g_R as
8-bit blockwise codes.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor

from . import distributed as fdist
from .autolr import GeNConfig
from .backends import Backend, get_backend, scalar_dtype
from .bases import BaseUpdate, get_base
from .closures import backward_into, check_loss
from .reduction import Reduced, reduce_gram
from .rules import CombineRule, get_rule
from .stats import (
    SKIP_FORGET_LOSS,
    SKIP_GRAM,
    SKIP_LR,
    SKIP_RETAIN_LOSS,
    SKIP_WEIGHTS,
    StepStats,
    skip_flags,
)
from .step_sizes import FixedStep, StepContext, StepSize, StepSizeResult, get_step_size
from .update import Bucket, UpdatePass, gather_buckets

__all__ = ["NGDiffOptimizer"]

Closure = Callable[[], Tensor]
ParamsT = Union[Iterable[Tensor], Iterable[dict[str, Any]]]

_RETAIN = "retain_grad"
#: rule names of older checkpoints that mean the same rule today.
_LEGACY_RULE_NAMES = {"gdiff": "gdiff-0.5"}


def _check_lr(lr: Any, where: str) -> float:
    """``lr`` as a float: a finite positive real number (a Python or NumPy one, or a real
    one-element tensor, as torch's optimizers take); ``ValueError`` otherwise."""
    value = lr
    if isinstance(lr, Tensor) and lr.numel() == 1 and lr.dtype.is_floating_point:
        value = lr.item()
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{where} must be a finite positive number, got {lr!r}")
    return float(value)


class NGDiffOptimizer(torch.optim.Optimizer):
    """Normalized gradient difference (and every two-task rule) as a ``torch.optim.Optimizer``.

    Args:
        params: parameters or parameter groups (each group may set its own ``lr`` and base
            hyper-parameters, like torch's optimizers).
        lr: the learning rate η of ``θ ← θ − η·u`` (the initial one when ``autolr``).
        rule: the combine rule, one of :data:`fastngd.rules.RULES` (``"ngdiff"``, ``"gdiff"``,
            ``"gd"``, ``"ga"``, ``"lossnorm"``, ``"rlw"``, ``"pcgrad"``, ``"pcgrad_retain"``,
            ``"imtlg"``, ``"mgda"``, ``"sago"`` and the ``"surgery_*"`` strategies); global to
            all groups.
        base: the base update under the direction, one of :data:`fastngd.BASES`: ``"sgd"``
            (``u = d``, the default), ``"momentum"``, ``"adam"``, ``"adamw"`` (torch's
            semantics with ``d`` in place of the gradient; see :mod:`fastngd.bases`).
        momentum: μ of ``base="momentum"`` (default 0.9).
        betas, eps: Adam's ``(β₁, β₂)`` (default (0.9, 0.999)) and ε (default 1e-8).
        weight_decay: L2 decay (``sgd``, ``momentum``, ``adam``; default 0) or decoupled decay
            (``adamw``; default 1e-2).
        rule_options: options of the rule, e.g. ``{"c": 0.9}`` for ``gdiff``.
        autolr: fit the learning rate with GeN (needs ``closure_retain``); the same as
            ``step_size="gen"`` (``False``: ``"fixed"``).
        autolr_every: fit every this many calls of :meth:`step`.
        autolr_ema, autolr_clip, autolr_scale: see :class:`fastngd.autolr.GeNConfig`.
        step_size: a name of :data:`fastngd.step_sizes.STEP_SIZES` or a
            :class:`fastngd.step_sizes.StepSize`; overrides ``autolr`` when given.
        backend: ``"auto"`` (Triton on CUDA when available, else torch), ``"torch"``,
            ``"triton"``.
        retain_storage: ``"exact"`` (g_R kept as is) or ``"int8"`` (8-bit blockwise codes).
        seed: seeds the generator of randomised rules (``rlw``).

    The learning rate applied to group ``k`` is ``group["lr"] × lr_scale``, where
    ``lr_scale`` (initially 1) is what GeN fits; schedulers may still edit ``group["lr"]``
    (a non-finite value then skips the step, with its reason in the statistics).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        rule: str = "ngdiff",
        *,
        base: str = "sgd",
        momentum: Optional[float] = None,
        betas: Optional[tuple[float, float]] = None,
        eps: Optional[float] = None,
        weight_decay: Optional[float] = None,
        rule_options: Optional[dict[str, Any]] = None,
        autolr: bool = True,
        autolr_every: int = 10,
        autolr_ema: float = 0.9,
        autolr_clip: tuple[float, float] = (0.5, 2.0),
        autolr_scale: float = 1.0,
        step_size: Union[str, StepSize, None] = None,
        backend: str = "auto",
        retain_storage: str = "exact",
        seed: int = 0,
    ) -> None:
        lr = _check_lr(lr, "lr")
        if retain_storage not in ("exact", "int8"):
            raise ValueError(f"retain_storage must be 'exact' or 'int8', got {retain_storage!r}")
        self.rule: CombineRule = get_rule(rule, **(rule_options or {}))
        self.base: BaseUpdate = get_base(base)
        defaults = self._defaults(lr, momentum=momentum, betas=betas, eps=eps,
                                  weight_decay=weight_decay)
        lo, hi = autolr_clip
        self.gen_config = GeNConfig(
            every=autolr_every, ema=autolr_ema, clip=(float(lo), float(hi)), scale=autolr_scale
        )
        if isinstance(step_size, StepSize):
            self.step_size: StepSize = step_size
        else:
            name = step_size if step_size is not None else ("gen" if autolr else "fixed")
            self.step_size = get_step_size(name, self.gen_config)
        self.backend_name = backend
        self.retain_storage = retain_storage
        super().__init__(params, defaults)
        first = next((p for g in self.param_groups for p in g["params"]), None)
        if first is None:
            raise ValueError("NGDiffOptimizer got no parameters (every group is empty)")
        self._device = fdist.local_view(first.detach()).device
        # built now: an unusable backend fails at construction, and the first step reuses it
        self._backends: dict[torch.device, Backend] = {
            self._device: get_backend(backend, self._device)}
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(int(seed))
        self._global: dict[str, Any] = {
            "step": torch.zeros((), dtype=torch.int64, device=self._device),
            "lr_scale": torch.ones((), dtype=scalar_dtype(self._device), device=self._device),
            "calls": 0,
        }
        self._stashed_loss: Optional[Tensor] = None
        self._in_hooks = False

    def _defaults(self, lr: float, **given: Any) -> dict[str, Any]:
        """``lr`` and the base's per-group hyper-parameters, the given ones overriding the
        base's defaults; ``ValueError`` for a value the base does not use or a bad one."""
        defaults: dict[str, Any] = {"lr": lr, **self.base.defaults}
        for key, value in given.items():
            if value is None:
                continue
            defaults[key] = tuple(value) if key == "betas" and isinstance(value, list) else value
        self.base.validate(defaults)
        return defaults

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the hooks (as ``torch.optim.Optimizer``, which keeps only
        ``defaults``, ``state`` and ``param_groups``: that would lose the rule, the base, the
        step size and the global state) and the backends, which :meth:`__setstate__` builds
        again, so ``copy.deepcopy`` and pickling give an optimizer that steps on as this one
        does."""
        return {k: v for k, v in self.__dict__.items()
                if k != "_backends" and not (k.startswith("_optimizer_") and k.endswith("hooks"))}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._backends = {self._device: get_backend(self.backend_name, self._device)}

    # ------------------------------------------------------------------ public API
    @property
    def autolr(self) -> bool:
        """Whether the step size fits the learning rate (anything but a fixed step)."""
        return not isinstance(self.step_size, FixedStep)

    @property
    def lr_scale(self) -> Tensor:
        """The GeN multiplier of every group's ``lr`` (a 0-d device tensor)."""
        return self._global["lr_scale"]

    @property
    def num_steps(self) -> Tensor:
        """Number of steps whose update was applied (not skipped), as a 0-d device tensor."""
        return self._global["step"]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """``torch.optim.Optimizer.add_param_group`` with checks: ``ValueError`` for a
        parameter listed twice (in this group or another), a group ``lr`` that is not a
        finite positive number (a NumPy number or one-element tensor is kept as a float), or a
        bad base hyper-parameter."""
        params = param_group.get("params")
        if isinstance(params, Tensor):
            params = [params]
        elif params is not None and not isinstance(params, set):
            params = list(params)
            if len({id(p) for p in params}) != len(params):
                raise ValueError("a parameter group lists the same tensor more than once")
        param_group = {**param_group, "params": params}
        if "lr" in param_group:
            param_group["lr"] = _check_lr(param_group["lr"], "every group lr")
        super().add_param_group(param_group)
        try:
            self.base.validate(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()
            raise

    def step(  # type: ignore[override]
        self,
        closure_retain: Optional[Closure] = None,
        closure_forget: Optional[Closure] = None,
    ) -> StepStats:
        """One unlearning step; returns its :class:`~fastngd.stats.StepStats`.

        ``closure_retain`` returns the retain loss L_R (to decrease), ``closure_forget`` the
        forget loss L_F (to increase), each a scalar tensor built from the current
        parameters. They must not call ``backward`` (the optimizer does) and should be
        deterministic (same batch, no dropout) because GeN calls ``closure_retain`` again to
        probe. A closure whose loss reaches none of the optimizer's parameters is an error.
        On return every managed ``.grad`` is ``None``.

        Called with no closures, this is :meth:`step_from_grads` (for code that computes the
        gradients itself, such as gradient accumulation or ``accelerate``). The step hooks run
        once around it (:meth:`_hooked`).
        """
        return self._hooked(self._step, closure_retain, closure_forget)

    step.hooked = True  # type: ignore[attr-defined]  # torch must not wrap it: _hooked runs the hooks

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's own ``step`` is not wrapped by torch either: the hooks run once, in
        :meth:`_hooked`, when it reaches this class's :meth:`step` or :meth:`step_from_grads`
        (and not at all for a call that makes no update, such as the
        :class:`~fastngd.integrations.hf_trainer.TrainerNGDiffOptimizer` call that returns the
        step already made)."""
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__:
            cls.step.hooked = True  # type: ignore[attr-defined]

    def _hooked(self, body: Callable[..., StepStats], *args: Any) -> StepStats:
        """``body(*args)`` inside the step hooks (``register_step_pre_hook`` /
        ``register_step_post_hook`` and the global ones, as torch runs them around
        ``step``), once per update: a call made while the hooks already run (a subclass's
        ``step`` calling this class's, or :meth:`step` calling :meth:`step_from_grads`) runs
        ``body`` alone."""
        if self._in_hooks:
            return body(*args)
        self._in_hooks = True
        try:
            return torch.optim.Optimizer.profile_hook_step(
                lambda _self, *a: body(*a))(self, *args)
        finally:
            self._in_hooks = False

    def _step(self, closure_retain: Optional[Closure],
              closure_forget: Optional[Closure]) -> StepStats:
        if closure_retain is None and closure_forget is None:
            return self._step_from_grads()
        if closure_retain is None or closure_forget is None:
            raise ValueError("pass both closure_retain and closure_forget, or neither")
        self._clear_grads()
        self.discard_retain_grad()
        managed = self._managed()
        try:
            with torch.enable_grad():
                loss_r = check_loss(closure_retain(), "closure_retain")
                backward_into(loss_r, "closure_retain", managed)
            self.stash_retain_grad(loss_r)
            with torch.enable_grad():
                loss_f = check_loss(closure_forget(), "closure_forget")
                backward_into(loss_f, "closure_forget", managed)
        except BaseException:
            self.discard_retain_grad()
            self._clear_grads()
            raise
        return self._step_from_grads(loss_forget=loss_f, closure_retain=closure_retain)

    def stash_retain_grad(self, loss_retain: Optional[Tensor] = None) -> None:
        """Move every ``p.grad`` (the retain gradient g_R) into the optimizer state.

        No copy is made in exact mode (the tensor itself is kept and ``p.grad`` becomes
        ``None``, so the next backward writes the forget gradient into a fresh buffer).
        ``loss_retain`` (optional) is remembered for rules and GeN that need L_R.
        """
        groups: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if self.state[p].get(_RETAIN) is not None:
                    raise RuntimeError(
                        "a retain gradient is already stashed; call step_from_grads() "
                        "or discard_retain_grad() first"
                    )
                if p.grad.is_sparse:
                    raise TypeError("NGDiffOptimizer does not support sparse gradients")
                groups.setdefault((p.device, p.grad.dtype), []).append(p)
        for (device, _), params in groups.items():
            grads = [fdist.local_view(p.grad) for p in params if p.grad is not None]
            if self.retain_storage == "exact":
                # a .grad that is a view (DDP with gradient_as_bucket_view=True) shares memory
                # that the next backward writes again: only then is a copy needed
                grads = [g.clone() if g is p.grad and g._base is not None else g
                         for g, p in zip(grads, params)]
            stored = self._backend_for(device).store_retain(grads, self.retain_storage)
            for p, entry in zip(params, stored):
                self.state[p][_RETAIN] = entry
                p.grad = None
        self._stashed_loss = None if loss_retain is None else loss_retain.detach().reshape(())

    @torch.no_grad()
    def reset_momentum(self) -> None:
        """Clear the base's running average of past directions, in place, for every
        parameter that has state: Adam's and AdamW's first moment ``m`` (their second moment
        ``v`` and step count ``t`` are kept, so the next update is
        ``(1 − β₁)·g/(1 − β₁ᵗ)/(√v̂ + ε)``: the new direction alone, at about ``1 − β₁`` of a
        full step, growing back as ``m`` refills) and heavy-ball's buffer ``b`` (the next
        step is ``b = g``, as on a first step). Nothing for ``sgd``, which has no such state.

        What it is for: steering the next steps by what their own batches say, e.g. when a
        loop changes what the steps aim at (:mod:`fastngd.unlearn.retain_check` calls it at
        the start of each repair round).
        """
        names = self.base.momentum_names
        if not names:
            return
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state:
                    continue
                for name in names:
                    if name in state:
                        state[name].zero_()

    def discard_retain_grad(self) -> None:
        """Drop a stashed retain gradient (e.g. after an aborted step)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    self.state[p].pop(_RETAIN, None)
        self._stashed_loss = None

    def step_from_grads(
        self,
        loss_retain: Optional[Tensor] = None,
        loss_forget: Optional[Tensor] = None,
        closure_retain: Optional[Closure] = None,
    ) -> StepStats:
        """The step on gradients computed by the caller.

        Expects g_R stashed by :meth:`stash_retain_grad` and g_F in ``p.grad``. Losses are
        needed by loss-based rules (``lossnorm``) and GeN (``L₀ = loss_retain``; defaults to
        the loss given to :meth:`stash_retain_grad`); GeN also needs ``closure_retain``.
        The optimizer's step hooks run once around it, as around :meth:`step`.
        """
        return self._hooked(self._step_from_grads, loss_retain, loss_forget, closure_retain)

    def _step_from_grads(self, loss_retain: Optional[Tensor] = None,
                         loss_forget: Optional[Tensor] = None,
                         closure_retain: Optional[Closure] = None) -> StepStats:
        if loss_retain is None:
            loss_retain = self._stashed_loss
        try:
            return self._apply(loss_retain, loss_forget, closure_retain)
        finally:
            self.discard_retain_grad()
            self._clear_grads()

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Optimizer.state_dict`` (the base's per-parameter state included)
        plus the global state under ``"ngdiff"`` (step count, GeN learning-rate scale, call
        counter, RNG state, rule, base and step-size state)."""
        sd = super().state_dict()
        sd["ngdiff"] = {
            "step": self._global["step"].clone(),
            "lr_scale": self._global["lr_scale"].clone(),
            "calls": self._global["calls"],
            "rng_state": self._generator.get_state(),
            "rule": self.rule.name,
            "base": self.base.name,
            "step_size": {"name": self.step_size.name, **self.step_size.state_dict()},
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`; later steps are bit-identical to the original run.

        The base's state keeps its own dtype (float32 moments of bf16 parameters are not
        cast to bf16 as ``torch.optim.Optimizer`` would)."""
        state_dict = dict(state_dict)
        extra = state_dict.pop("ngdiff", None)
        if extra is None:
            raise ValueError("state_dict has no 'ngdiff' entry: not from an NGDiffOptimizer")
        self._check_compatible(extra)
        state_dict["state"], kept = self._split_base_state(state_dict.get("state", {}))
        super().load_state_dict(state_dict)
        self._restore_base_state(state_dict, kept)
        self._global = {
            "step": extra["step"].to(self._device).clone(),
            "lr_scale": extra["lr_scale"].to(self._device, scalar_dtype(self._device)).clone(),
            "calls": int(extra["calls"]),
        }
        self._generator.set_state(extra["rng_state"])
        self.step_size.load_state_dict(
            {k: v for k, v in extra.get("step_size", {}).items() if k != "name"})

    # ------------------------------------------------------------------ state_dict parts
    def _check_compatible(self, extra: dict[str, Any]) -> None:
        rule = _LEGACY_RULE_NAMES.get(extra["rule"], extra["rule"])
        if rule != self.rule.name:
            raise ValueError(
                f"state_dict was saved with rule {extra['rule']!r}, this optimizer uses "
                f"{self.rule.name!r}"
            )
        base = extra.get("base", "sgd")
        if base != self.base.name:
            raise ValueError(
                f"state_dict was saved with base {base!r}, this optimizer uses {self.base.name!r}"
            )

    def _split_base_state(self, state: dict[Any, Any]) -> tuple[dict[Any, Any], dict[Any, Any]]:
        """``(rest, base)``: the per-parameter state without, and with only, the base's
        buffers (which ``Optimizer.load_state_dict`` would cast to the parameter dtype)."""
        names = set(self.base.state_names) | ({"step"} if self.base.counts_steps else set())
        rest, kept = {}, {}
        for pid, entries in state.items():
            rest[pid] = {k: v for k, v in entries.items() if k not in names}
            kept[pid] = {k: v for k, v in entries.items() if k in names}
        return rest, kept

    def _restore_base_state(self, state_dict: dict[str, Any], kept: dict[Any, Any]) -> None:
        saved_ids = [pid for g in state_dict["param_groups"] for pid in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        by_id = dict(zip(saved_ids, params))
        for pid, entries in kept.items():
            if pid not in by_id or not entries:
                continue
            p = by_id[pid]
            fresh = self.base.init_state(p)
            for name, value in entries.items():
                like = fresh[name]
                self.state[p][name] = value.to(device=like.device, dtype=like.dtype).clone()

    # ------------------------------------------------------------------ internals
    def _backend_for(self, device: torch.device) -> Backend:
        if device not in self._backends:
            self._backends[device] = get_backend(self.backend_name, device)
        return self._backends[device]

    def _managed(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.requires_grad]

    def _clear_grads(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def _losses(self, loss_retain: Optional[Tensor], loss_forget: Optional[Tensor]) -> Tensor:
        sd, dev = scalar_dtype(self._device), self._device

        def as_loss(x: Optional[Tensor]) -> Tensor:
            if x is None:
                return torch.zeros((), dtype=sd, device=dev)
            return x.detach().reshape(()).to(dev, sd)

        return torch.stack([as_loss(loss_retain), as_loss(loss_forget)])

    def _weights(self, reduced: Reduced, buckets: list[Bucket]) -> Tensor:
        """The rule's weights (``(2,)``, or ``(N, 2)`` for per-tensor rules), also set on
        every bucket as its ``(n, 2)`` table."""
        if self.rule.random:
            noise = torch.randn(2, generator=self._generator, dtype=torch.float32)
            noise = noise.to(self._device, reduced.gram.dtype, non_blocking=True)
        else:
            noise = torch.zeros(2, dtype=reduced.gram.dtype, device=self._device)
        source = reduced.rows if self.rule.per_tensor else reduced.gram
        weights = self.rule.weights(source, reduced.losses, noise)  # type: ignore[arg-type]
        start = 0
        for b in buckets:
            rows = weights[start:start + len(b)] if self.rule.per_tensor else weights.expand(len(b), 2)
            b.weights = rows.to(device=b.device, dtype=scalar_dtype(b.device)).contiguous()
            start += len(b)
        return weights

    def _skip_flags(self, reduced: Reduced, weights: Tensor) -> Tensor:
        """The step's skip flags: non-finite losses, Gram scalars, weights or learning rate."""
        lrs = [float(g["lr"]) for g in self.param_groups]
        scale = self._global["lr_scale"]
        if all(math.isfinite(x) for x in lrs):
            lr_bad = ~torch.isfinite(scale * max(abs(x) for x in lrs))
        else:
            lr_bad = torch.ones((), dtype=torch.bool, device=self._device)
        gram_bad = ~torch.isfinite(reduced.gram).all()
        if reduced.rows is not None:
            gram_bad = gram_bad | ~torch.isfinite(reduced.rows).all()
        return skip_flags({
            SKIP_RETAIN_LOSS: ~torch.isfinite(reduced.losses[0]),
            SKIP_FORGET_LOSS: ~torch.isfinite(reduced.losses[1]),
            SKIP_GRAM: gram_bad,
            SKIP_WEIGHTS: ~torch.isfinite(weights).all(),
            SKIP_LR: lr_bad,
        })

    def _apply(
        self,
        loss_retain: Optional[Tensor],
        loss_forget: Optional[Tensor],
        closure_retain: Optional[Closure],
    ) -> StepStats:
        calls = self._global["calls"]
        if self.step_size.probes(calls) and (closure_retain is None or loss_retain is None):
            raise ValueError(
                "autolr=True needs closure_retain and the retain loss to fit the learning "
                "rate; pass them to step_from_grads(), or construct with autolr=False"
            )
        if self.rule.needs_losses and (loss_retain is None or loss_forget is None):
            raise ValueError(f"rule {self.rule.name!r} needs both losses")
        self._check_both_tasks()
        buckets = list(gather_buckets(self.param_groups, self.state, self.base, _RETAIN).values())
        if not buckets:
            raise RuntimeError("no parameter has a gradient: did the closures use the model?")
        reduced = reduce_gram(buckets, self._backend_for, self.rule.per_tensor,
                              self._losses(loss_retain, loss_forget), self._device)
        weights = self._weights(reduced, buckets)
        flags = self._skip_flags(reduced, weights)
        ok = flags == 0
        run = UpdatePass(self.base, buckets, self._backend_for, self.rule.mode, ok)
        products = _Products(run, reduced, self.base, self.rule, buckets)
        ctx = StepContext(closure_retain, reduced.losses[0], self._global["lr_scale"], ok, calls,
                          products.reduce_probes)
        try:
            result = self.step_size.apply(run, ctx)
        finally:
            run.finish()
        self._global["step"] = self._global["step"] + (ok & (result.applied > 0)).long()
        self._global["lr_scale"] = result.lr_scale
        self._global["calls"] = calls + 1
        return self._stats(reduced, weights, flags, result, products.total())

    def _check_both_tasks(self) -> None:
        """``ValueError`` when a task that the rule weighs has no gradient on any parameter
        (nothing stashed, or no forget backward): the step would go along the other task
        alone. Single parameters without a gradient are fine (zero for that task). Runs
        before any buffer is made, and stops at the first parameter that has both."""
        retain = forget = False
        for group in self.param_groups:
            for p in group["params"]:
                forget = forget or p.grad is not None
                retain = retain or (p in self.state and self.state[p].get(_RETAIN) is not None)
                if retain and forget:
                    return
        if not (retain or forget):
            return  # no gradient at all: gather_buckets' error names the closures
        if not retain and self.rule.name != "ga":
            raise ValueError(
                "no retain gradient is stashed: run the retain loss's backward and call "
                "stash_retain_grad() before the forget loss's backward (only rule 'ga' "
                "steps without g_R)")
        if not forget and self.rule.name != "gd":
            raise ValueError(
                "no forget gradient: run the forget loss's backward after stash_retain_grad() "
                "(only rule 'gd' steps without g_F)")

    def _stats(self, reduced: Reduced, weights: Tensor, flags: Tensor, result: StepSizeResult,
               products: Tensor) -> StepStats:
        gram = reduced.gram
        nr, nf = torch.sqrt(gram[0]), torch.sqrt(gram[1])
        ok_norms = (nr > 0) & (nf > 0)
        safe_nr, safe_nf = (torch.where(ok_norms, x, torch.ones_like(x)) for x in (nr, nf))
        cosine = torch.where(ok_norms, (gram[2] / safe_nr / safe_nf).clamp(-1, 1),
                             torch.zeros_like(gram[2]))
        w = weights.reshape(-1, 2).mean(0)
        skipped = flags != 0
        lr0 = float(self.param_groups[0]["lr"])
        applied = torch.where(result.applied > 0, result.applied * lr0,
                              torch.zeros_like(result.applied))
        return StepStats(
            loss_retain=reduced.losses[0],
            loss_forget=reduced.losses[1],
            norm_retain=nr,
            norm_forget=nf,
            cosine=cosine,
            weight_retain=w[0],
            weight_forget=w[1],
            lr=applied,
            lr_scale=result.lr_scale,
            lr_updated=result.lr_updated,
            skipped=skipped,
            skip_flags=flags,
            probe_losses=result.probe_losses,
            retain_dot_update=torch.where(skipped, torch.zeros_like(products[0]), products[0]),
            forget_dot_update=torch.where(skipped, torch.zeros_like(products[1]), products[1]),
            gen_outcome=result.outcome,
        )


class _Products:
    """``[g_R·u, g_F·u]`` of the step over every rank.

    Replicated buckets give them directly. Sharded buckets give per-rank partial sums: for
    ``base="sgd"`` with a linear rule and no weight decay, ``u = d`` and the sums follow from
    the reduced Gram scalars (``g_R·d = w_R·rr − w_F·rf``, ``g_F·d = w_R·rf − w_F·ff``) with no
    collective; otherwise they travel with the GeN probe losses on a GeN step, or in one
    extra ``all_reduce`` of 2 numbers.
    """

    def __init__(self, run: UpdatePass, reduced: Reduced, base: BaseUpdate, rule: CombineRule,
                 buckets: list[Bucket]) -> None:
        self.run, self.reduced, self.buckets = run, reduced, buckets
        self.world = fdist.world_size()
        sharded = [b for b in buckets if b.sharded]
        self.derived = (base.name == "sgd" and rule.mode == "linear"
                        and all(float(g.get("weight_decay", 0.0)) == 0.0
                                for b in sharded for g in b.groups))
        self.pending = self.world > 1 and bool(sharded) and not self.derived
        self.from_gram = self.world > 1 and bool(sharded) and self.derived

    def reduce_probes(self, probes: Tensor) -> Tensor:
        """The GeN probe losses averaged over ranks, with the sharded products summed in the
        same collective when they need it."""
        if self.world == 1:
            return probes
        extra = [self.run.products_sharded] if self.pending else []
        out = fdist.all_reduce_sum(torch.cat([probes, *extra]))
        if self.pending:
            self.run.products_sharded, self.pending = out[2:4], False
        return out[:2] / self.world

    def total(self) -> Tensor:
        """The reduced products (one collective of 2 numbers if still pending)."""
        run = self.run
        if self.from_gram:
            return run.products_local + self._from_gram()
        if self.pending:
            run.products_sharded = fdist.all_reduce_sum(run.products_sharded.clone())
            self.pending = False
        return run.products_local + run.products_sharded

    def _from_gram(self) -> Tensor:
        """``[Σ w_R·rr − w_F·rf, Σ w_R·rf − w_F·ff]`` over the sharded tensors."""
        parts, start, rows = [], 0, self.reduced.rows
        for b in self.buckets:
            n = len(b)
            if b.sharded:
                w = b.weight_table.to(self.reduced.gram.device, self.reduced.gram.dtype)
                g = rows[start:start + n] if rows is not None else None
                if g is None:  # global weights: the reduced sharded Gram suffices
                    rr, ff, rf = self.reduced.sharded
                    wr, wf = w[0]
                    return torch.stack([wr * rr - wf * rf, wr * rf - wf * ff])
                parts.append(torch.stack([(w[:, 0] * g[:, 0] - w[:, 1] * g[:, 2]).sum(),
                                          (w[:, 0] * g[:, 2] - w[:, 1] * g[:, 1]).sum()]))
            start += n
        return torch.stack(parts).sum(0)

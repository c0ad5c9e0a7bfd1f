"""``NGDiffOptimizer``: two-task unlearning steps with pluggable combine rules and GeN AutoLR.

One step (see :meth:`NGDiffOptimizer.step`):

1. ``L_R = closure_retain()``, backward; the fresh ``p.grad`` *is* g_R and is moved into the
   optimizer state (no copy);
2. ``L_F = closure_forget()``, backward into a fresh ``p.grad`` = g_F;
3. the Gram scalars ``rr = ‖g_R‖², ff = ‖g_F‖², rf = g_R·g_F`` over every parameter;
4. the combine rule gives ``(w_R, w_F)``, the direction is ``d = w_R·g_R − w_F·g_F``;
5. every ``autolr_every`` calls, GeN fits the learning rate from two probes of L_R at
   ``θ ∓ ξd`` (``θ`` backed up in the then-free gradient buffer, restored bit-exactly);
6. ``θ ← θ − η·d``.

Memory: besides the parameters and their one ``.grad``, exact mode holds one gradient-sized
buffer (g_R), GeN included; ``retain_storage="int8"`` stores g_R as 8-bit blockwise codes.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterable, Optional, Union

import torch
from torch import Tensor

from .autolr import GeNConfig, gen_rescale
from . import distributed as fdist
from .backends import Backend, accumulation_dtype, get_backend
from .rules import CombineRule, get_rule
from .stats import StepStats

__all__ = ["NGDiffOptimizer"]

Closure = Callable[[], Tensor]
ParamsT = Union[Iterable[Tensor], Iterable[dict[str, Any]]]

_RETAIN = "retain_grad"


def _check_loss(loss: Any, who: str) -> Tensor:
    if not isinstance(loss, Tensor):
        raise TypeError(f"{who} must return a scalar torch.Tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(f"{who} must return a scalar loss, got shape {tuple(loss.shape)}")
    if not loss.is_floating_point():
        raise TypeError(f"{who} must return a floating-point loss, got {loss.dtype}")
    return loss.reshape(())


class _Bucket:
    """Tensors of one (device, dtype): what a backend call operates on."""

    __slots__ = ("device", "dtype", "sharded", "params", "retain", "forget", "lrs")

    def __init__(self, device: torch.device, dtype: torch.dtype, sharded: bool) -> None:
        self.device, self.dtype, self.sharded = device, dtype, sharded
        self.params: list[Tensor] = []
        self.retain: list[Any] = []
        self.forget: list[Tensor] = []
        self.lrs: list[float] = []

    def lr_tensor(self, factor: Tensor) -> Tensor:
        """Per-tensor learning rates ``lr_i·factor`` on the bucket's device."""
        acc = accumulation_dtype(self.dtype)
        base = torch.tensor(self.lrs, dtype=acc).to(self.device, non_blocking=True)
        return base * factor.to(device=self.device, dtype=acc)


class NGDiffOptimizer(torch.optim.Optimizer):
    """Normalized gradient difference (and every two-task rule) as a ``torch.optim.Optimizer``.

    Args:
        params: parameters or parameter groups (each group may set its own ``lr``).
        lr: the learning rate η of ``θ ← θ − η·d`` (the initial one when ``autolr``).
        rule: the combine rule, one of :data:`fastngd.rules.RULES` (``"ngdiff"``, ``"gdiff"``,
            ``"gd"``, ``"ga"``, ``"lossnorm"``, ``"rlw"``, ``"pcgrad"``, ``"pcgrad_retain"``,
            ``"imtlg"``, ``"mgda"``, ``"sago"``); global to all groups.
        rule_options: options of the rule, e.g. ``{"c": 0.9}`` for ``gdiff``.
        autolr: fit the learning rate with GeN (needs ``closure_retain``).
        autolr_every: fit every this many calls of :meth:`step`.
        autolr_ema, autolr_clip, autolr_scale: see :class:`fastngd.autolr.GeNConfig`.
        backend: ``"auto"`` (Triton on CUDA when available, else torch), ``"torch"``,
            ``"triton"``.
        retain_storage: ``"exact"`` (g_R kept as is) or ``"int8"`` (8-bit blockwise codes).
        seed: seeds the generator of randomised rules (``rlw``).

    With ``autolr``, the learning rate applied to group ``k`` is ``group["lr"] × lr_scale``,
    where ``lr_scale`` (initially 1) is what GeN fits; schedulers may still edit
    ``group["lr"]``.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        rule: str = "ngdiff",
        *,
        rule_options: Optional[dict[str, Any]] = None,
        autolr: bool = True,
        autolr_every: int = 10,
        autolr_ema: float = 0.9,
        autolr_clip: tuple[float, float] = (0.5, 2.0),
        autolr_scale: float = 1.0,
        backend: str = "auto",
        retain_storage: str = "exact",
        seed: int = 0,
    ) -> None:
        if not isinstance(lr, (int, float)) or not lr > 0 or lr != lr or lr == float("inf"):
            raise ValueError(f"lr must be a finite positive number, got {lr!r}")
        if retain_storage not in ("exact", "int8"):
            raise ValueError(f"retain_storage must be 'exact' or 'int8', got {retain_storage!r}")
        self.rule: CombineRule = get_rule(rule, **(rule_options or {}))
        self.autolr = bool(autolr)
        lo, hi = autolr_clip
        self.gen_config = GeNConfig(
            every=autolr_every, ema=autolr_ema, clip=(float(lo), float(hi)), scale=autolr_scale
        )
        self.backend_name = backend
        self.retain_storage = retain_storage
        super().__init__(params, {"lr": float(lr)})
        for group in self.param_groups:
            if not isinstance(group["lr"], (int, float)) or not group["lr"] > 0:
                raise ValueError(f"every group lr must be a positive number, got {group['lr']!r}")
        first = self.param_groups[0]["params"][0]
        self._device = first.device
        get_backend(backend, self._device)  # fail early on an unusable backend
        self._backends: dict[torch.device, Backend] = {}
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(int(seed))
        self._global: dict[str, Any] = {
            "step": torch.zeros((), dtype=torch.int64, device=self._device),
            "lr_scale": torch.ones(
                (), dtype=torch.float32 if self._device.type == "mps" else torch.float64,
                device=self._device,
            ),
            "calls": 0,
        }
        self._stashed_loss: Optional[Tensor] = None

    # ------------------------------------------------------------------ public API
    @property
    def lr_scale(self) -> Tensor:
        """The GeN multiplier of every group's ``lr`` (a 0-d device tensor)."""
        return self._global["lr_scale"]

    @property
    def num_steps(self) -> Tensor:
        """Number of applied (not skipped) steps, as a 0-d device tensor."""
        return self._global["step"]

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
        probe. On return every managed ``.grad`` is ``None``.

        Called with no closures, this is :meth:`step_from_grads` (for code that computes the
        gradients itself, such as gradient accumulation or ``accelerate``).
        """
        if closure_retain is None and closure_forget is None:
            return self.step_from_grads()
        if closure_retain is None or closure_forget is None:
            raise ValueError("pass both closure_retain and closure_forget, or neither")
        self._clear_grads()
        self.discard_retain_grad()
        with torch.enable_grad():
            loss_r = _check_loss(closure_retain(), "closure_retain")
            self._backward(loss_r, "closure_retain")
        self.stash_retain_grad(loss_r)
        try:
            with torch.enable_grad():
                loss_f = _check_loss(closure_forget(), "closure_forget")
                self._backward(loss_f, "closure_forget")
        except BaseException:
            self.discard_retain_grad()
            self._clear_grads()
            raise
        return self.step_from_grads(loss_forget=loss_f, closure_retain=closure_retain)

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

    def discard_retain_grad(self) -> None:
        """Drop a stashed retain gradient (e.g. after an aborted step)."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p].pop(_RETAIN, None) if p in self.state else None
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
        """
        if loss_retain is None:
            loss_retain = self._stashed_loss
        try:
            return self._apply(loss_retain, loss_forget, closure_retain)
        finally:
            self.discard_retain_grad()
            self._clear_grads()

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Optimizer.state_dict`` plus the global state under ``"ngdiff"``
        (step count, GeN learning-rate scale, call counter, RNG state)."""
        sd = super().state_dict()
        sd["ngdiff"] = {
            "step": self._global["step"].clone(),
            "lr_scale": self._global["lr_scale"].clone(),
            "calls": self._global["calls"],
            "rng_state": self._generator.get_state(),
            "rule": self.rule.name,
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`; later steps are bit-identical to the original run."""
        state_dict = dict(state_dict)
        extra = state_dict.pop("ngdiff", None)
        if extra is None:
            raise ValueError("state_dict has no 'ngdiff' entry: not from an NGDiffOptimizer")
        if extra["rule"] != self.rule.name:
            raise ValueError(
                f"state_dict was saved with rule {extra['rule']!r}, this optimizer uses "
                f"{self.rule.name!r}"
            )
        super().load_state_dict(state_dict)
        self._global = {
            "step": extra["step"].to(self._device).clone(),
            "lr_scale": extra["lr_scale"].to(self._device).clone(),
            "calls": int(extra["calls"]),
        }
        self._generator.set_state(extra["rng_state"])

    # ------------------------------------------------------------------ internals
    def _backend_for(self, device: torch.device) -> Backend:
        if device not in self._backends:
            self._backends[device] = get_backend(self.backend_name, device)
        return self._backends[device]

    @staticmethod
    def _backward(loss: Tensor, who: str) -> None:
        if not loss.requires_grad:
            raise ValueError(f"the loss from {who} does not depend on any trainable parameter")
        loss.backward()

    def _clear_grads(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def _buckets(self) -> "OrderedDict[tuple[torch.device, torch.dtype, bool], _Bucket]":
        """Group the managed tensors (local shards for DTensors) by device, dtype, sharding."""
        buckets: OrderedDict[tuple[torch.device, torch.dtype, bool], _Bucket] = OrderedDict()
        for group in self.param_groups:
            for p in group["params"]:
                if not p.requires_grad:
                    continue
                g_r = self.state[p].get(_RETAIN) if p in self.state else None
                g_f = p.grad
                if g_r is None and g_f is None:
                    continue
                if g_f is not None and g_f.is_sparse:
                    raise TypeError("NGDiffOptimizer does not support sparse gradients")
                sharded = fdist.is_sharded(p)
                local = fdist.local_view(p.detach())
                g_f = torch.zeros_like(local) if g_f is None else fdist.local_view(g_f)
                if g_r is None:
                    g_r = torch.zeros_like(local)
                elif isinstance(g_r, Tensor):
                    g_r = fdist.local_view(g_r)
                if g_f.dtype != local.dtype or g_f.shape != local.shape:
                    raise TypeError(
                        f"gradient of dtype {g_f.dtype} / shape {tuple(g_f.shape)} does not "
                        f"match its parameter ({local.dtype}, {tuple(local.shape)})"
                    )
                key = (local.device, local.dtype, sharded)
                if key not in buckets:
                    buckets[key] = _Bucket(local.device, local.dtype, sharded)
                b = buckets[key]
                b.params.append(local)
                b.retain.append(g_r)
                b.forget.append(g_f)
                b.lrs.append(float(group["lr"]))
        return buckets

    def _apply(
        self,
        loss_retain: Optional[Tensor],
        loss_forget: Optional[Tensor],
        closure_retain: Optional[Closure],
    ) -> StepStats:
        gen_due = self.autolr and self._global["calls"] % self.gen_config.every == 0
        if gen_due and (closure_retain is None or loss_retain is None):
            raise ValueError(
                "autolr=True needs closure_retain and the retain loss to fit the learning "
                "rate; pass them to step_from_grads(), or construct with autolr=False"
            )
        buckets = self._buckets()
        if not buckets:
            raise RuntimeError("no parameter has a gradient: did the closures use the model?")
        dev = self._device
        acc = (
            torch.float64
            if all(b.dtype == torch.float64 for b in buckets.values())
            else torch.float32
        )
        fit = torch.float32 if dev.type == "mps" else torch.float64
        world = fdist.world_size()
        gram_local = torch.zeros(3, dtype=acc, device=dev)
        gram_sharded = torch.zeros(3, dtype=fit, device=dev)
        for b in buckets.values():
            part = self._backend_for(b.device).gram(b.retain, b.forget).to(dev)
            if b.sharded:
                gram_sharded = gram_sharded + part.to(fit)
            else:
                gram_local = gram_local + part.to(acc)

        def as_loss(x: Optional[Tensor]) -> Tensor:
            if x is None:
                return torch.zeros((), dtype=fit, device=dev)
            return x.detach().reshape(()).to(dev, fit)

        losses = torch.stack([as_loss(loss_retain), as_loss(loss_forget)])
        if world > 1:  # one collective: sharded Gram partials and the two losses
            reduced = fdist.all_reduce_sum(torch.cat([gram_sharded, losses]))
            gram_sharded, losses = reduced[:3], reduced[3:] / world
        gram = gram_local + gram_sharded.to(acc)
        if self.rule.name == "lossnorm" and (loss_retain is None or loss_forget is None):
            raise ValueError("rule 'lossnorm' needs both losses")
        if self.rule.random:
            noise = torch.randn(2, generator=self._generator, dtype=torch.float32)
            noise = noise.to(dev, acc, non_blocking=True)
        else:
            noise = torch.zeros(2, dtype=acc, device=dev)
        weights = self.rule.weights(gram, losses, noise)

        flags = (
            (~torch.isfinite(losses[0])).long()
            | ((~torch.isfinite(losses[1])).long() << 1)
            | ((~torch.isfinite(gram).all()).long() << 2)
            | ((~torch.isfinite(weights).all()).long() << 3)
        )
        ok = flags == 0
        weights = torch.where(ok, weights, torch.zeros_like(weights))
        okf = ok.to(self._global["lr_scale"].dtype)
        scale = self._global["lr_scale"]
        sago = self.rule.elementwise

        lr_updated = torch.zeros((), dtype=torch.bool, device=dev)
        probe_losses: Optional[Tensor] = None
        if not gen_due:
            for b in buckets.values():
                self._backend_for(b.device).update(
                    b.params, b.retain, b.forget, b.lr_tensor(scale * okf),
                    weights.to(b.device, accumulation_dtype(b.dtype)), sago,
                )
        else:
            assert closure_retain is not None and loss_retain is not None
            saved = []
            for b in buckets.values():
                d, bk = self._backend_for(b.device).direction_and_backup(
                    b.params, b.retain, b.forget,
                    weights.to(b.device, accumulation_dtype(b.dtype)), sago,
                )
                saved.append((b, d, bk))

            def move(factor: Tensor) -> None:
                for b, d, bk in saved:
                    self._backend_for(b.device).perturb(b.params, bk, d, b.lr_tensor(factor))

            try:
                with torch.no_grad():
                    move(-scale * okf)
                    l_plus = _check_loss(closure_retain(), "closure_retain").detach()
                    move(scale * okf)
                    l_minus = _check_loss(closure_retain(), "closure_retain").detach()
            except BaseException:
                move(torch.zeros((), device=dev))
                raise
            probes = torch.stack([l_plus.to(dev, fit), l_minus.to(dev, fit)])
            if world > 1:
                probes = fdist.all_reduce_sum(probes) / world
            l_plus, l_minus = probes[0], probes[1]
            factor, accepted, _ = gen_rescale(losses[0], l_plus, l_minus, self.gen_config)
            accepted = accepted & ok
            scale = (scale * torch.where(accepted, factor, torch.ones_like(factor))).to(scale.dtype)
            move(-scale * okf)
            self._global["lr_scale"] = scale
            lr_updated = accepted
            probe_losses = probes

        self._global["step"] = self._global["step"] + ok.long()
        self._global["calls"] += 1
        nr, nf = torch.sqrt(gram[0]), torch.sqrt(gram[1])
        denom = nr * nf
        cosine = torch.where(denom > 0, gram[2] / torch.where(denom > 0, denom, 1), 0)
        return StepStats(
            loss_retain=losses[0],
            loss_forget=losses[1],
            norm_retain=nr,
            norm_forget=nf,
            cosine=cosine,
            weight_retain=weights[0],
            weight_forget=weights[1],
            lr=self.param_groups[0]["lr"] * scale * okf,
            lr_scale=scale,
            lr_updated=lr_updated,
            skipped=~ok,
            skip_flags=flags,
            probe_losses=probe_losses,
        )

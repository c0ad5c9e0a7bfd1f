"""The base update of one step over every bucket: what the step size drives.

A *bucket* holds the managed tensors of one (device, dtype, sharded) kind: local views of the
parameters (local shards for DTensors), their stored retain gradients, forget gradients, the
base's state and the parameter group of each. :class:`UpdatePass` builds each bucket's
per-tensor ``hyper`` table (learning rate, weight decay, β₁, β₂, ε, bias corrections; see
:data:`fastngd.backends.base.HYPER_COLUMNS`) on the device and calls the backends:
:meth:`~UpdatePass.step` (the fused update), or :meth:`~UpdatePass.advance` then
:meth:`~UpdatePass.move` (GeN). It also sums the products ``[g_R·u, g_F·u]`` the backends
return, separately for sharded buckets (their sums are per rank).

Learning rates: a skipped step gets ``lr = 0`` on every row (the backend then reads and
writes nothing); a group whose own ``lr`` is exactly 0 gets the smallest positive float64
instead, which rounds to a zero step in the update's arithmetic while its state still
advances, as torch's optimizers do with ``lr = 0``.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from . import distributed as fdist
from .backends import Backend, scalar_dtype
from .bases import BaseUpdate

__all__ = ["Bucket", "UpdatePass", "gather_buckets"]

#: learning rate standing for a group ``lr`` of exactly 0 (see the module docstring).
TINY_LR = math.ulp(0.0)


class Bucket:
    """Tensors of one (device, dtype, sharded) kind: what a backend call operates on."""

    __slots__ = ("device", "dtype", "forget", "groups", "params", "retain", "sharded", "state",
                 "steps", "weights")

    def __init__(self, device: torch.device, dtype: torch.dtype, sharded: bool,
                 n_state: int) -> None:
        self.device, self.dtype, self.sharded = device, dtype, sharded
        self.params: list[Tensor] = []
        self.retain: list[Any] = []
        self.forget: list[Tensor] = []
        self.state: list[list[Tensor]] = [[] for _ in range(n_state)]
        self.steps: list[Tensor] = []
        self.groups: list[dict[str, Any]] = []
        self.weights: Optional[Tensor] = None

    def __len__(self) -> int:
        return len(self.params)

    @property
    def weight_table(self) -> Tensor:
        """The ``(n, 2)`` combine weights of the bucket's tensors (set by the optimizer)."""
        if self.weights is None:
            raise RuntimeError("the bucket's combine weights are not set")
        return self.weights


def _gradients(p: Tensor, g_r: Any) -> tuple[Tensor, Any, Tensor]:
    """Local views of ``p``, its retain entry and its forget gradient (zeros for a task that
    gave the parameter no gradient)."""
    g_f = p.grad
    if g_f is not None and g_f.is_sparse:
        raise TypeError("NGDiffOptimizer does not support sparse gradients")
    local = fdist.local_view(p.detach())
    g_f = torch.zeros_like(local) if g_f is None else fdist.local_view(g_f)
    if g_r is None:
        g_r = torch.zeros_like(local)
    elif isinstance(g_r, Tensor):
        g_r = fdist.local_view(g_r)
    if g_f.dtype != local.dtype or g_f.shape != local.shape:
        raise TypeError(
            f"gradient of dtype {g_f.dtype} / shape {tuple(g_f.shape)} does not match its "
            f"parameter ({local.dtype}, {tuple(local.shape)})"
        )
    return local, g_r, g_f


def gather_buckets(param_groups: list[dict[str, Any]], state: Any, base: BaseUpdate,
                   retain_key: str) -> OrderedDict[tuple, Bucket]:
    """Group the managed tensors that have a gradient in either task by device, dtype and
    sharding, creating the base's state of a parameter the first time it takes part."""
    buckets: OrderedDict[tuple, Bucket] = OrderedDict()
    names = base.state_names
    for group in param_groups:
        for p in group["params"]:
            if not p.requires_grad:
                continue
            g_r = state[p].get(retain_key) if p in state else None
            if g_r is None and p.grad is None:
                continue
            local, g_r, g_f = _gradients(p, g_r)
            st = state[p]
            if any(k not in st for k in names) or (base.counts_steps and "step" not in st):
                st.update(base.init_state(p))
            key = (local.device, local.dtype, fdist.is_sharded(p))
            if key not in buckets:
                buckets[key] = Bucket(local.device, local.dtype, key[2], len(names))
            b = buckets[key]
            b.params.append(local)
            b.retain.append(g_r)
            b.forget.append(g_f)
            for k, name in enumerate(names):
                b.state[k].append(fdist.local_view(st[name]))
            if base.counts_steps:
                b.steps.append(st["step"])
            b.groups.append(group)
    return buckets


class UpdatePass:
    """The base update of one step (see the module docstring and
    :class:`fastngd.step_sizes.UpdateRun`).

    Args:
        base: the base update.
        buckets: from :func:`gather_buckets`, each with its ``weights`` set.
        backend_for: the backend of a device.
        mode: the rule's combine mode.
        ok: the step is not skipped (0-d boolean on the optimizer's device).
    """

    def __init__(self, base: BaseUpdate, buckets: list[Bucket],
                 backend_for: Callable[[torch.device], Backend], mode: str, ok: Tensor) -> None:
        self.base, self.buckets, self.backend_for, self.mode, self.ok = base, buckets, backend_for, mode, ok
        self._fixed = [self._fixed_columns(b) for b in buckets]
        self._saved: list[tuple[list[Tensor], list[Tensor], Tensor]] = []
        self.advanced = False
        self.products_local = torch.zeros(2, dtype=scalar_dtype(ok.device), device=ok.device)
        self.products_sharded = torch.zeros_like(self.products_local)

    def _fixed_columns(self, b: Bucket) -> tuple[Tensor, Tensor]:
        """``(lr, [wd, β₁, β₂, ε, bc₁, bc₂])`` of a bucket on its device (the group learning
        rates, and the columns that do not depend on the step size)."""
        sd = scalar_dtype(b.device)
        rows: dict[int, list[float]] = {}  # one read per group, not per tensor
        host = torch.tensor([rows.setdefault(id(g), [float(g["lr"]), *self.base.hyper(g)])
                             for g in b.groups], dtype=torch.float64)
        dev = host.to(device=b.device, dtype=sd, non_blocking=True)
        if self.base.counts_steps:
            t = torch.stack(b.steps).to(device=b.device, dtype=sd) + 1
        else:
            t = torch.ones(len(b), dtype=sd, device=b.device)
        bc1, bc2 = self.base.bias_corrections(dev[:, 2], dev[:, 3], t)
        return dev[:, 0], torch.stack([dev[:, 1], dev[:, 2], dev[:, 3], dev[:, 4], bc1, bc2], 1)

    def _hyper(self, k: int, factor: Tensor) -> Tensor:
        lr0, rest = self._fixed[k]
        f = factor.to(device=lr0.device, dtype=lr0.dtype)
        lr = torch.where(lr0 == 0, torch.full_like(lr0, TINY_LR), lr0 * f)
        lr = torch.where(self.ok.to(lr0.device), lr, torch.zeros_like(lr))
        return torch.cat([lr[:, None], rest], 1).contiguous()

    def _add_products(self, b: Bucket, products: Tensor) -> None:
        products = products.to(self.products_local.device, self.products_local.dtype)
        if b.sharded:
            self.products_sharded = self.products_sharded + products
        else:
            self.products_local = self.products_local + products

    def step(self, factor: Tensor) -> None:
        """The fused update with ``lr = group lr × factor`` on every row."""
        self.advanced = True
        for k, b in enumerate(self.buckets):
            products = self.backend_for(b.device).step(
                b.params, b.retain, b.forget, b.state, self._hyper(k, factor), b.weight_table,
                self.base.name, self.mode)
            self._add_products(b, products)

    def advance(self, factor: Tensor) -> None:
        """Advance the state, keep ``u`` and a backup of θ; ``ξ = group lr × factor``."""
        self.advanced = True
        for k, b in enumerate(self.buckets):
            hyper = self._hyper(k, factor)
            update, backup, products = self.backend_for(b.device).advance_and_backup(
                b.params, b.retain, b.forget, b.state, hyper, b.weight_table, self.base.name,
                self.mode)
            self._saved.append((update, backup, hyper[:, 0]))
            self._add_products(b, products)

    def move(self, c: Tensor) -> None:
        """``θ ← backup + c·ξ·u`` on every bucket (after :meth:`advance`)."""
        for b, (update, backup, xi) in zip(self.buckets, self._saved):
            scale = (c.to(device=xi.device, dtype=xi.dtype) * xi).contiguous()
            self.backend_for(b.device).perturb(b.params, backup, update, scale)

    def finish(self) -> None:
        """Count the step in the per-tensor step numbers of the base (bias corrections), when
        its state advanced (not on a skipped step)."""
        if not (self.advanced and self.base.counts_steps):
            return
        for b in self.buckets:
            if b.steps:
                torch._foreach_add_(b.steps, self.ok.to(device=b.steps[0].device,
                                                        dtype=b.steps[0].dtype))

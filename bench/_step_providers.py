"""The ways of running one optimizer step that ``bench/optimizer_step.py`` compares.

* :class:`Naive`: NGDiff + SGD written by hand (cloned g_R, per-tensor norms in a Python loop,
  temporaries, per-tensor update);
* :class:`BackendProvider`: a :class:`fastngd.backends.Backend` driven the way
  :class:`fastngd.NGDiffOptimizer` drives it (Gram pass, weights, fused step of the base;
  for GeN: ``advance_and_backup`` and three perturbations);
* :class:`Composite`: what a user writes with torch's own tools for NGDiff under a torch
  optimizer: NGDiff's direction with ``foreach`` ops written into the forget gradient's
  buffer (in place, so no allocation) and handed over as ``.grad`` to ``torch.optim.AdamW``
  (``foreach=True``, or ``fused=True``). It has no GeN step.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from bench._common import count_ops, numel, sync
from fastngd.backends import state_names
from fastngd.rules import get_rule

__all__ = [
    "ADAM_HYPER",
    "LR",
    "BackendProvider",
    "Composite",
    "Naive",
    "Provider",
    "State",
    "TorchOpsProvider",
    "TritonProvider",
]

LR = 1e-4
#: the AdamW settings of the benchmark (torch's defaults, weight decay 1e-2), at step 10.
ADAM_HYPER = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "t": 10}
_RULE = get_rule("ngdiff")


class State:
    """Parameters, retain and forget gradients of one workload (random, fixed seed), and the
    bases' state buffers (float32, created on first use).

    Parameters are drawn from ``N(0, 0.02²)``, gradients from ``N(0, 10⁻⁶)``. By default they
    are drawn on the host and copied to ``device`` (the same values on every device); with
    ``on_device`` they are drawn by ``device``'s own generator (other values, but no host
    memory or host time: a 1.5-billion-element list takes minutes and 18 GB on the host).
    """

    def __init__(self, shapes: Sequence[tuple[int, ...]], dtype: torch.dtype,
                 device: torch.device, on_device: bool = False) -> None:
        g = torch.Generator(device=device if on_device else "cpu").manual_seed(0)

        def rand(shape: tuple[int, ...], scale: float) -> Tensor:
            if on_device:
                t = torch.randn(shape, generator=g, device=device, dtype=torch.float32)
                return t.mul_(scale).to(dtype)
            return (torch.randn(shape, generator=g) * scale).to(device=device, dtype=dtype)

        self.params = [rand(s, 0.02) for s in shapes]
        self.retain = [rand(s, 1e-3) for s in shapes]
        self.forget = [rand(s, 1e-3) for s in shapes]
        self.n = numel(shapes)
        self.elem = torch.empty((), dtype=dtype).element_size()
        self.grad_bytes = self.n * self.elem
        self.device = device
        self._base_state: dict[str, list[list[Tensor]]] = {}

    def base_state(self, kind: str) -> list[list[Tensor]]:
        """The state lists of base ``kind`` (zeros, float32 for 16-bit parameters)."""
        if kind not in self._base_state:
            acc = torch.float64 if self.params[0].dtype == torch.float64 else torch.float32
            self._base_state[kind] = [[torch.zeros(p.shape, dtype=acc, device=self.device)
                                       for p in self.params] for _ in state_names(kind)]
        return self._base_state[kind]

    def free(self) -> None:
        self._base_state.clear()


def hyper_table(kind: str, n: int, device: torch.device, lr: float = LR) -> Tensor:
    """The backend's ``hyper`` rows of base ``kind`` (:data:`ADAM_HYPER` for Adam/AdamW)."""
    if kind in ("adam", "adamw"):
        b1, b2 = ADAM_HYPER["betas"]
        t = ADAM_HYPER["t"]
        row = [lr, ADAM_HYPER["weight_decay"], b1, b2, ADAM_HYPER["eps"], 1 - b1**t, 1 - b2**t]
    elif kind == "momentum":
        row = [lr, 0.0, 0.9, 0.0, 0.0, 1.0, 1.0]
    else:
        row = [lr, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    return torch.tensor([row] * n, dtype=torch.float64, device=device)


def ngdiff_weights(gram: Tensor, n: int) -> Tensor:
    losses = torch.zeros(2, dtype=gram.dtype, device=gram.device)
    return _RULE.weights(gram, losses, torch.zeros_like(losses)).expand(n, 2).contiguous()


class Provider:
    """One way of running the step; ``step``/``gen`` may modify the state in place."""

    name = "abstract"
    mode = "exact"
    base = "sgd"
    has_gen = True

    @property
    def key(self) -> str:
        head = self.name if self.name in ("naive",) else f"{self.name}-{self.mode}"
        return head if self.base == "sgd" else f"{head}+{self.base}"

    def stash(self, st: State, grads: list[Tensor]) -> Any:
        """What is kept of g_R (given as the tensors the retain backward produced)."""
        raise NotImplementedError

    def step(self, st: State, kept: Any) -> None:
        raise NotImplementedError

    def gen(self, st: State, kept: Any) -> None:
        raise NotImplementedError

    def launches(self, fn: Callable[[], None], device: torch.device) -> int:
        """What ``fn`` (one step on ``device``) launches: ATen compute operations here."""
        return count_ops(fn)


class Naive(Provider):
    """NGDiff as written by hand: clone g_R, per-tensor norms in a Python loop, temporaries
    for the normalised difference, per-tensor update (and, for GeN, a cloned backup and a
    temporary per perturbation)."""

    name = "naive"

    def stash(self, st: State, grads: list[Tensor]) -> Any:
        return [g.clone() for g in grads]

    @staticmethod
    def _direction(g_r: list[Tensor], g_f: list[Tensor]) -> list[Tensor]:
        nr2 = torch.zeros((), device=g_r[0].device)
        nf2 = torch.zeros((), device=g_r[0].device)
        for g in g_r:
            nr2 = nr2 + g.norm().float() ** 2
        for g in g_f:
            nf2 = nf2 + g.norm().float() ** 2
        nr, nf = nr2.sqrt(), nf2.sqrt()
        return [a / nr.to(a.dtype) - b / nf.to(b.dtype) for a, b in zip(g_r, g_f)]

    def step(self, st: State, kept: Any) -> None:
        d = self._direction(kept, st.forget)
        for p, di in zip(st.params, d):
            p.sub_(di, alpha=LR)

    def gen(self, st: State, kept: Any) -> None:
        d = self._direction(kept, st.forget)
        backup = [p.clone() for p in st.params]
        for s in (-LR, LR, -LR):  # probe −, probe + (forwards stubbed out), final
            for p, b, di in zip(st.params, backup, d):
                p.copy_(b + s * di)


class BackendProvider(Provider):
    """A :class:`fastngd.backends.Backend` driven the way the optimizer drives it."""

    def __init__(self, backend: Any, mode: str, base: str = "sgd") -> None:
        self.backend, self.name, self.mode, self.base = backend, backend.name, mode, base
        self._hyper: Optional[Tensor] = None

    def stash(self, st: State, grads: list[Tensor]) -> Any:
        return self.backend.store_retain(grads, "int8" if self.mode == "compact" else "exact")

    def _tables(self, st: State, kept: Any) -> tuple[Tensor, Tensor]:
        if self._hyper is None or self._hyper.shape[0] != len(st.params):
            self._hyper = hyper_table(self.base, len(st.params), st.device)
        gram = self.backend.gram(kept, st.forget)
        return self._hyper, ngdiff_weights(gram, len(st.params))

    def step(self, st: State, kept: Any) -> None:
        hyper, w = self._tables(st, kept)
        self.backend.step(st.params, kept, st.forget, st.base_state(self.base), hyper, w,
                          self.base)

    def gen(self, st: State, kept: Any) -> None:
        hyper, w = self._tables(st, kept)
        u, b, _ = self.backend.advance_and_backup(st.params, kept, st.forget,
                                                  st.base_state(self.base), hyper, w, self.base)
        for factor in (-1.0, 1.0, -1.0):  # probe −, probe + (forwards stubbed out), final
            self.backend.perturb(st.params, b, u, hyper[:, 0] * factor)


class TorchOpsProvider(BackendProvider):
    """The torch backend with its native CPU loop turned off (``FASTNGD_NATIVE=0``): every
    item through torch ops (:mod:`fastngd.backends._fused`), to compare with the loop."""

    def __init__(self, mode: str, base: str = "sgd") -> None:
        from fastngd.backends import TorchBackend

        super().__init__(TorchBackend(), mode, base)
        self.name = "torch-ops"

    def step(self, st: State, kept: Any) -> None:
        with native_off():
            super().step(st, kept)

    def gen(self, st: State, kept: Any) -> None:
        with native_off():
            super().gen(st, kept)


@contextlib.contextmanager
def native_off() -> Iterator[None]:
    """``FASTNGD_NATIVE=0`` for the duration (restored after)."""
    old = os.environ.get("FASTNGD_NATIVE")
    os.environ["FASTNGD_NATIVE"] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["FASTNGD_NATIVE"]
        else:
            os.environ["FASTNGD_NATIVE"] = old


class TritonProvider(BackendProvider):
    """:class:`BackendProvider` of the Triton backend, counting its kernel launches."""

    def launches(self, fn: Callable[[], None], device: torch.device) -> int:
        """Triton kernel launches of ``fn`` (``device`` is synchronised when it is a GPU; on
        the CPU the kernels run in Triton's interpreter, synchronously)."""
        from fastngd.kernels import launch_count

        before = launch_count()
        fn()
        sync(device)
        return launch_count() - before


class Composite(Provider):
    """NGDiff's direction formed with ``foreach`` ops in the forget gradient's buffer, then
    ``torch.optim.AdamW`` (``foreach=True`` or ``fused=True``) on it as ``.grad``."""

    name = "composite"
    base = "adamw"
    has_gen = False

    def __init__(self, fused: bool) -> None:
        self.mode = "fused" if fused else "foreach"
        self.fused = fused
        self._opt: Optional[torch.optim.Optimizer] = None
        self._params: list[Tensor] = []

    def _optimizer(self, st: State) -> torch.optim.Optimizer:
        if self._opt is None or self._params is not st.params:
            b1, b2 = ADAM_HYPER["betas"]
            kw: dict[str, Any] = {"fused": True} if self.fused else {"foreach": True}
            self._params = st.params
            self._opt = torch.optim.AdamW(st.params, lr=LR, betas=(b1, b2), eps=ADAM_HYPER["eps"],
                                          weight_decay=ADAM_HYPER["weight_decay"], **kw)
        return self._opt

    def stash(self, st: State, grads: list[Tensor]) -> Any:
        return grads  # the retain gradients moved aside, as the optimizer does (no copy)

    def step(self, st: State, kept: Any) -> None:
        opt = self._optimizer(st)
        nr = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(kept)))
        nf = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(st.forget)))
        w_r, w_f = (1.0 / float(nr) if float(nr) > 0 else 0.0,
                    1.0 / float(nf) if float(nf) > 0 else 0.0)
        d = st.forget  # d = w_R·g_R − w_F·g_F, in place in the forget gradient's buffer
        torch._foreach_mul_(d, -w_f)
        torch._foreach_add_(d, kept, alpha=w_r)
        for p, g in zip(st.params, d):
            p.grad = g
        opt.step()
        for p in st.params:
            p.grad = None  # (the forget buffer now holds d: NGDiff is scale-free, so the
            # next repetition's direction is formed from it just as well)

    def gen(self, st: State, kept: Any) -> None:  # pragma: no cover - has_gen is False
        raise NotImplementedError

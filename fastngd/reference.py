"""A deliberately naive float64 reference of the whole optimizer step: the test oracle.

Everything is written per tensor with plain Python floats and float64 tensors, straight from
the formulas (DESIGN §1), independently of :mod:`fastngd.rules` and the backends. It is slow
and holds extra copies on purpose; never use it for training.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

__all__ = ["reference_weights", "reference_direction", "ReferenceNGDiff"]


def _inv(x: float) -> float:
    return 1.0 / x if x != 0 else 0.0


def reference_weights(
    rule: str,
    rr: float,
    ff: float,
    rf: float,
    loss_retain: float = 0.0,
    loss_forget: float = 0.0,
    noise: Sequence[float] = (0.0, 0.0),
    c: float = 0.5,
) -> tuple[float, float]:
    """``(w_R, w_F)`` of ``d = w_R·g_R − w_F·g_F`` for ``rule`` from the Gram scalars."""
    nr, nf = math.sqrt(rr), math.sqrt(ff)
    if rule in ("ngdiff", "sago"):
        return _inv(nr), _inv(nf)
    if rule == "gdiff":
        return c, 1.0 - c
    if rule == "gd":
        return 1.0, 0.0
    if rule == "ga":
        return 0.0, 1.0
    if rule == "lossnorm":
        return _inv(abs(loss_retain)), _inv(abs(loss_forget))
    if rule == "rlw":
        m = max(noise)
        e = [math.exp(z - m) for z in noise]
        return e[0] / sum(e), e[1] / sum(e)
    if rule == "pcgrad":
        # g1 = g_R, g2 = -g_F
        dot = -rf
        if dot >= 0:
            return 1.0, 1.0
        return 1.0 - dot / rr, 1.0 - dot / ff
    if rule == "pcgrad_retain":
        a, g = _inv(nr), _inv(nf)
        return a + (g * rf / rr if rf > 0 else 0.0), g
    if rule == "imtlg":
        s = nr + nf
        return (nf / s, nr / s) if s > 0 else (0.0, 0.0)
    if rule == "mgda":
        den = rr + 2 * rf + ff
        if den <= 0:
            return 0.5, 0.5
        gamma = min(max((ff + rf) / den, 0.0), 1.0)
        return gamma, 1.0 - gamma
    raise ValueError(f"unknown rule {rule!r}")


def reference_direction(
    retain: Sequence[Tensor], forget: Sequence[Tensor], rule: str, w_r: float, w_f: float
) -> list[Tensor]:
    """The float64 direction, per tensor; ``sago`` applies the elementwise conflict mask."""
    out = []
    for r, f in zip(retain, forget):
        r64, f64 = r.double(), f.double()
        if rule == "sago":
            d = torch.zeros_like(r64)
            for idx in range(r64.numel()):
                ri, fi = r64.view(-1)[idx].item(), f64.view(-1)[idx].item()
                d.view(-1)[idx] = w_r * ri if ri * fi > 0 else -w_f * fi
            out.append(d)
        else:
            out.append(w_r * r64 - w_f * f64)
    return out


class ReferenceNGDiff:
    """Naive float64 NGDiff/two-task optimizer with GeN, mirroring ``NGDiffOptimizer``.

    ``params`` are float64 tensors updated in place; :meth:`step` takes the gradients and
    losses the caller computed, plus ``probe() -> float`` evaluating the retain loss at the
    current ``params`` (used by GeN). ``storage_dtype`` models parameters stored in a lower
    precision: every value written to a parameter (and the GeN direction, which the optimizer
    keeps in the gradient buffer) is rounded to it, all arithmetic staying in float64.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        lr: float,
        rule: str = "ngdiff",
        *,
        c: float = 0.5,
        autolr: bool = False,
        autolr_every: int = 10,
        autolr_ema: float = 0.9,
        autolr_clip: tuple[float, float] = (0.5, 2.0),
        autolr_scale: float = 1.0,
        seed: int = 0,
        storage_dtype: torch.dtype = torch.float64,
    ) -> None:
        self.params = list(params)
        self.storage_dtype = storage_dtype
        self.lr, self.rule, self.c = lr, rule, c
        self.autolr, self.every = autolr, autolr_every
        self.ema, self.clip, self.kappa = autolr_ema, autolr_clip, autolr_scale
        self.generator = torch.Generator().manual_seed(seed)
        self.calls = 0
        self.lr_scale = 1.0

    def step(
        self,
        grads_retain: Sequence[Tensor],
        grads_forget: Sequence[Tensor],
        loss_retain: float,
        loss_forget: float,
        probe: Optional[Callable[[], float]] = None,
    ) -> dict[str, float]:
        rr = sum(float((g.double() ** 2).sum()) for g in grads_retain)
        ff = sum(float((g.double() ** 2).sum()) for g in grads_forget)
        rf = sum(float((a.double() * b.double()).sum()) for a, b in zip(grads_retain, grads_forget))
        noise = (0.0, 0.0)
        if self.rule == "rlw":
            noise = tuple(torch.randn(2, generator=self.generator).tolist())
        w_r, w_f = reference_weights(self.rule, rr, ff, rf, loss_retain, loss_forget, noise, self.c)
        d = reference_direction(grads_retain, grads_forget, self.rule, w_r, w_f)
        gen = self.autolr and self.calls % self.every == 0
        if gen:
            assert probe is not None
            d = [self._round(di) for di in d]
            theta = [p.clone() for p in self.params]
            xi = self.lr * self.lr_scale
            for p, t, di in zip(self.params, theta, d):
                p.copy_(self._round(t - xi * di))
            l_plus = probe()
            for p, t, di in zip(self.params, theta, d):
                p.copy_(self._round(t + xi * di))
            l_minus = probe()
            for p, t in zip(self.params, theta):
                p.copy_(t)
            g = (l_minus - l_plus) / (2 * xi)
            curv = (l_plus - 2 * loss_retain + l_minus) / xi**2
            if g > 0 and curv > 0:
                eta = xi
                eta_star = self.kappa * g / curv
                target = min(max(eta_star, self.clip[0] * eta), self.clip[1] * eta)
                self.lr_scale = (self.ema * eta + (1 - self.ema) * target) / self.lr
        self.calls += 1
        eta = self.lr * self.lr_scale
        for p, di in zip(self.params, d):
            p.copy_(self._round(p - eta * di))
        return {"rr": rr, "ff": ff, "rf": rf, "w_retain": w_r, "w_forget": w_f, "lr": eta}

    def _round(self, t: Tensor) -> Tensor:
        return t.to(self.storage_dtype).double()

"""A deliberately naive float64 reference of the whole optimizer step: the test oracle.

Everything is written per tensor with plain Python floats and float64 tensors, straight from
the formulas (DESIGN §1 and §3, torch's optimizers, the SAGO authors' code), independently of
:mod:`fastngd.rules`, :mod:`fastngd.bases` and the backends. It is slow and holds extra copies
on purpose; never use it for training.

One step of :class:`ReferenceNGDiff`: Gram scalars → weights (:func:`reference_weights`) or the
authors' gradient surgery (:func:`surgery_direction`) → direction ``d`` → skip check → base
update ``u`` (:class:`ReferenceBase`) → fixed step ``θ − η·u``, or GeN along ``u`` (probes at
``θ ∓ ξu``, fit, step; a non-finite probe keeps θ and halves the rate).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Callable, Optional

import torch
from torch import Tensor

__all__ = [
    "ReferenceBase",
    "ReferenceNGDiff",
    "reference_direction",
    "reference_weights",
    "surgery_direction",
]

SURGERY = ("sago", "sago_prefer_retain", "pcgrad", "pcgrad_global", "blur")


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
    """``(w_R, w_F)`` of ``d = w_R·g_R − w_F·g_F`` for ``rule`` from the Gram scalars
    (the package's own rules; the ``surgery_*`` ones are :func:`surgery_direction`)."""
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
    """The float64 direction, per tensor; ``sago`` applies the elementwise conflict mask
    (coordinate by coordinate: the retain gradient where ``r_i·f_i > 0``, else ``−w_F·f_i``)."""
    out = []
    for r, f in zip(retain, forget):
        r64, f64 = r.double(), f.double()
        if rule == "sago":
            d = torch.zeros_like(r64)
            for idx in range(r64.numel()):
                ri, fi = r64.view(-1)[idx].item(), f64.view(-1)[idx].item()
                conflict = (ri > 0 and fi > 0) or (ri < 0 and fi < 0)
                d.view(-1)[idx] = w_r * ri if conflict else -w_f * fi
            out.append(d)
        else:
            out.append(w_r * r64 - w_f * f64)
    return out


def surgery_direction(strategy: str, retain: Sequence[Tensor], forget: Sequence[Tensor],
                      alpha: float = 1.0, gamma: float = 1.0, eps: float = 1e-10) -> list[Tensor]:
    """The combined gradient of ``sustech-nlp/SAGO``'s ``GradSurgeryMixin._combine_grads``,
    transcribed in float64: the authors' forget gradient is ``h = −g_F`` (the gradient of
    their forget loss, the negative NLL), their retain gradient ``r = g_R``; strategies
    ``sago``, ``sago_prefer_retain``, ``pcgrad`` (per tensor), ``pcgrad_global``, ``blur``."""
    h = [-f.double() for f in forget]
    r = [x.double() for x in retain]
    if strategy in ("sago", "sago_prefer_retain", "pcgrad"):
        return [_surgery_tensor(strategy, hi, ri, alpha, gamma, eps) for hi, ri in zip(h, r)]
    dot = lambda a, b: sum(float((x * y).sum()) for x, y in zip(a, b))
    if strategy == "pcgrad_global":
        g_dot = dot(h, r)
        if g_dot < 0:
            coeff = g_dot / (dot(r, r) + eps)
            h = [hi - coeff * ri for hi, ri in zip(h, r)]
        return [gamma * hi + alpha * ri for hi, ri in zip(h, r)]
    if strategy == "blur":
        den = dot(h, h) + eps  # 0 only with eps = 0 and h = 0: nothing to project off
        coeff = dot(r, h) / den if den else 0.0
        projected = [ri - coeff * hi for hi, ri in zip(h, r)]
        return [gamma * hi + alpha * pi for hi, pi in zip(h, projected)]
    raise ValueError(f"unknown surgery strategy {strategy!r}")


def _surgery_tensor(strategy: str, h: Tensor, r: Tensor, alpha: float, gamma: float,
                    eps: float) -> Tensor:
    conflicts = torch.sign(h) * torch.sign(r) < 0
    if strategy == "pcgrad":
        dot = float((h * r).sum())
        if dot < 0:
            h = h - dot / (float((r * r).sum()) + eps) * r
        return gamma * h + alpha * r
    out = torch.zeros_like(h)
    out[conflicts] = alpha * r[conflicts]
    keep = ~conflicts
    out[keep] = gamma * h[keep] + (alpha * r[keep] if strategy == "sago_prefer_retain" else 0.0)
    return out


class ReferenceBase:
    """torch's optimizers, per tensor in float64, fed the direction ``d`` as the gradient:
    ``sgd`` (``u = d + wd·θ``), ``momentum`` (``b ← μb + d + wd·θ``), ``adam`` (L2 decay) and
    ``adamw`` (decoupled decay), bias corrections included."""

    def __init__(self, kind: str, n: int, momentum: float = 0.9,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        self.kind, self.mu, self.betas, self.eps, self.wd = kind, momentum, betas, eps, weight_decay
        self.state: list[dict[str, Tensor]] = [{} for _ in range(n)]
        self.t = [0] * n

    def update(self, i: int, theta: Tensor, d: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``(u, new state)`` of tensor ``i``; nothing is committed (see :meth:`commit`)."""
        st, wd = self.state[i], self.wd
        if self.kind == "sgd":
            return d + wd * theta, {}
        if self.kind == "momentum":
            buf = self.mu * st.get("b", torch.zeros_like(d)) + (d + wd * theta)
            return buf, {"b": buf}
        b1, b2 = self.betas
        g = d + wd * theta if self.kind == "adam" else d
        m = b1 * st.get("m", torch.zeros_like(d)) + (1 - b1) * g
        v = b2 * st.get("v", torch.zeros_like(d)) + (1 - b2) * g * g
        t = self.t[i] + 1
        u = (m / (1 - b1**t)) / (v.sqrt() / math.sqrt(1 - b2**t) + self.eps)
        if self.kind == "adamw":
            u = u + wd * theta
        return u, {"m": m, "v": v}

    def commit(self, i: int, state: dict[str, Tensor]) -> None:
        """The state of tensor ``i`` after an applied step."""
        self.state[i] = state
        self.t[i] += 1


class ReferenceNGDiff:
    """Naive float64 two-task optimizer mirroring ``NGDiffOptimizer`` (one parameter group).

    ``params`` are float64 tensors updated in place; :meth:`step` takes the gradients and
    losses the caller computed, plus ``probe() -> float`` evaluating the retain loss at the
    current ``params`` (used by GeN). ``storage_dtype`` models parameters stored in a lower
    precision: every value written to a parameter (and the GeN update ``u``, which the
    optimizer keeps in the gradient buffer) is rounded to it, all arithmetic staying in
    float64. Rules ``surgery_<strategy>`` use :func:`surgery_direction` with ``rule_options``
    (``alpha``, ``gamma``, ``eps``).
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        lr: float,
        rule: str = "ngdiff",
        *,
        c: float = 0.5,
        rule_options: Optional[dict[str, float]] = None,
        base: str = "sgd",
        momentum: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: Optional[float] = None,
        autolr: bool = False,
        autolr_every: int = 10,
        autolr_ema: float = 0.9,
        autolr_clip: tuple[float, float] = (0.5, 2.0),
        autolr_scale: float = 1.0,
        shrink: float = 0.5,
        seed: int = 0,
        storage_dtype: torch.dtype = torch.float64,
    ) -> None:
        self.params = list(params)
        self.storage_dtype = storage_dtype
        self.lr, self.rule, self.c = lr, rule, c
        self.rule_options = dict(rule_options or {})
        wd = (1e-2 if base == "adamw" else 0.0) if weight_decay is None else weight_decay
        self.base = ReferenceBase(base, len(self.params), momentum, betas, eps, wd)
        self.autolr, self.every = autolr, autolr_every
        self.ema, self.clip, self.kappa, self.shrink = autolr_ema, autolr_clip, autolr_scale, shrink
        self.generator = torch.Generator().manual_seed(seed)
        self.calls = 0
        self.lr_scale = 1.0

    def direction(self, grads_retain: Sequence[Tensor], grads_forget: Sequence[Tensor],
                  loss_retain: float, loss_forget: float) -> tuple[list[Tensor], dict[str, float]]:
        """``d`` per tensor and the step's scalars (Gram entries, weights)."""
        rr = sum(float((g.double() ** 2).sum()) for g in grads_retain)
        ff = sum(float((g.double() ** 2).sum()) for g in grads_forget)
        rf = sum(float((a.double() * b.double()).sum()) for a, b in zip(grads_retain, grads_forget))
        info = {"rr": rr, "ff": ff, "rf": rf, "w_retain": math.nan, "w_forget": math.nan}
        if self.rule.startswith("surgery_"):
            d = surgery_direction(self.rule[len("surgery_"):], grads_retain, grads_forget,
                                  **self.rule_options)
            return d, info
        noise = (0.0, 0.0)
        if self.rule == "rlw":
            noise = tuple(torch.randn(2, generator=self.generator).tolist())
        w_r, w_f = reference_weights(self.rule, rr, ff, rf, loss_retain, loss_forget, noise,
                                     self.c)
        info.update(w_retain=w_r, w_forget=w_f)
        return reference_direction(grads_retain, grads_forget, self.rule, w_r, w_f), info

    def step(
        self,
        grads_retain: Sequence[Tensor],
        grads_forget: Sequence[Tensor],
        loss_retain: float,
        loss_forget: float,
        probe: Optional[Callable[[], float]] = None,
    ) -> dict[str, float]:
        d, info = self.direction(grads_retain, grads_forget, loss_retain, loss_forget)
        gen = self.autolr and self.calls % self.every == 0
        self.calls += 1
        finite = all(math.isfinite(x) for x in (loss_retain, loss_forget, info["rr"],
                                                 info["ff"], info["rf"]))
        if not finite or not all(bool(torch.isfinite(di).all()) for di in d):
            return {**info, "lr": 0.0, "skipped": 1.0}
        thetas = [p.clone() for p in self.params]
        updates = [self.base.update(i, t, di) for i, (t, di) in enumerate(zip(thetas, d))]
        u = [x for x, _ in updates]
        for i, (_, st) in enumerate(updates):
            self.base.commit(i, st)  # the base advances once per applied step, probes included
        info["retain_dot_update"] = sum(float((g.double() * ui).sum())
                                        for g, ui in zip(grads_retain, u))
        info["forget_dot_update"] = sum(float((g.double() * ui).sum())
                                        for g, ui in zip(grads_forget, u))
        eta = self.lr * self.lr_scale
        if gen:
            assert probe is not None
            u = [self._round(ui) for ui in u]
            eta = self._gen(thetas, u, loss_retain, probe)
        for p, t, ui in zip(self.params, thetas, u):
            p.copy_(self._round(t - eta * ui))
        return {**info, "lr": eta, "skipped": 0.0}

    def _gen(self, thetas: list[Tensor], u: list[Tensor], l0: float,
             probe: Callable[[], float]) -> float:
        """GeN along ``u``; returns the step size to apply (0: the step is not taken)."""
        xi = self.lr * self.lr_scale
        losses = []
        for sign in (-1.0, 1.0):
            for p, t, ui in zip(self.params, thetas, u):
                p.copy_(self._round(t + sign * xi * ui))
            losses.append(probe())
        for p, t in zip(self.params, thetas):
            p.copy_(t)
        l_plus, l_minus = losses
        if not (math.isfinite(l_plus) and math.isfinite(l_minus)):
            self.lr_scale *= self.shrink
            return 0.0
        g = (l_minus - l_plus) / (2 * xi)
        curv = (l_plus - 2 * l0 + l_minus) / xi**2
        if g > 0 and curv > 0:
            target = min(max(self.kappa * g / curv, self.clip[0] * xi), self.clip[1] * xi)
            self.lr_scale = (self.ema * xi + (1 - self.ema) * target) / self.lr
        return self.lr * self.lr_scale

    def _round(self, t: Tensor) -> Tensor:
        return t.to(self.storage_dtype).double()

"""GeN automatic learning rate: a quadratic fit of the retain loss along the update.

Along the update ``u`` the base takes (``u = d`` for ``base="sgd"``) the retain loss is
modelled as ``L_R(θ − η·u) ≈ L₀ − η·G + ½·η²·C`` with ``G = g_Rᵀu`` and ``C = uᵀH_R u``; its
minimiser is ``η* = G/C``. Both come from two extra forward passes at ``θ ∓ ξ·u`` with ``ξ``
the current learning rate:

    L₊ = L_R(θ − ξu),  L₋ = L_R(θ + ξu)
    G ≈ (L₋ − L₊)/(2ξ),  C ≈ (L₊ − 2L₀ + L₋)/ξ²,  η* = G/C.

The fit is accepted only when ``G > 0`` and ``C > 0`` (and all losses are finite); then
``η ← ema·η + (1 − ema)·clip(κ·η*, lo·η, hi·η)``, otherwise ``η`` is kept. Defaults follow the
GeN reference: ``ema = 0.9``, ``[lo, hi] = [1/2, 2]``, ``κ = 1``. ``κ`` in ``(0, 2)`` scales the
fitted step: ``η*`` minimises L_R and is therefore conservative about forgetting, while any
``η < 2η*`` still decreases the quadratic model of L_R. A probe whose loss is not finite
means the step would overflow: the step is not taken and the rate is multiplied by
``shrink`` (1/2). The probing procedure itself is :class:`fastngd.step_sizes.GeNStep`.

Everything here is in units of the probe step, ``t = η/ξ``, so it applies unchanged when
parameter groups have different learning rates (the fit rescales all of them together).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["GeNConfig", "gen_fit", "gen_rescale"]


@dataclass(frozen=True)
class GeNConfig:
    """Settings of the GeN learning-rate fit.

    Attributes:
        every: refit every ``every`` calls of ``step`` (the first call included).
        ema: weight of the old learning rate in the moving average.
        clip: ``(lo, hi)``: the fitted rate is clipped to ``[lo·η, hi·η]`` before averaging.
        scale: ``κ``, multiplies the fitted rate ``η*`` (``0 < κ < 2``).
        shrink: multiplies the rate when a probe loss is not finite (``0 < shrink < 1``).
    """

    every: int = 10
    ema: float = 0.9
    clip: tuple[float, float] = (0.5, 2.0)
    scale: float = 1.0
    shrink: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"autolr_every must be a positive integer, got {self.every!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"autolr_ema must be in [0, 1), got {self.ema}")
        lo, hi = self.clip
        if not 0.0 < lo <= 1.0 <= hi:
            raise ValueError(f"autolr_clip must satisfy 0 < lo <= 1 <= hi, got {self.clip}")
        if not 0.0 < self.scale < 2.0:
            raise ValueError(f"autolr_scale must be in (0, 2), got {self.scale}")
        if not 0.0 < self.shrink < 1.0:
            raise ValueError(f"the GeN shrink factor must be in (0, 1), got {self.shrink}")


def gen_fit(l0: Tensor, l_plus: Tensor, l_minus: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Fit in units of the probe step: ``L(t) = L_R(θ − t·ξd) ≈ L₀ − t·G_t + ½t²·C_t``.

    Returns ``(G_t, C_t, t*)`` with ``G_t = (L₋ − L₊)/2 = ξ·G``, ``C_t = L₊ − 2L₀ + L₋ = ξ²·C``
    and ``t* = G_t/C_t = η*/ξ`` (``nan``-free: ``t* = 0`` where ``C_t = 0``).
    """
    g_t = (l_minus - l_plus) / 2
    c_t = l_plus - 2 * l0 + l_minus
    safe_c = torch.where(c_t != 0, c_t, torch.ones_like(c_t))
    t_star = torch.where(c_t != 0, g_t / safe_c, torch.zeros_like(c_t))
    return g_t, c_t, t_star


def gen_rescale(
    l0: Tensor, l_plus: Tensor, l_minus: Tensor, config: GeNConfig
) -> tuple[Tensor, Tensor, Tensor]:
    """The factor by which GeN multiplies the current learning rate.

    Returns ``(factor, accepted, t*)``: ``factor = ema + (1 − ema)·clip(κ·t*, lo, hi)`` when
    the fit is accepted (``G > 0``, ``C > 0``, all finite), else ``1``. No host sync.
    """
    g_t, c_t, t_star = gen_fit(l0, l_plus, l_minus)
    finite = torch.isfinite(l0) & torch.isfinite(l_plus) & torch.isfinite(l_minus)
    accepted = finite & (g_t > 0) & (c_t > 0)
    lo, hi = config.clip
    target = torch.clamp(config.scale * t_star, lo, hi)
    factor = torch.where(accepted, config.ema + (1 - config.ema) * target, torch.ones_like(t_star))
    return factor, accepted, t_star

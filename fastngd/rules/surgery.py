"""SAGO's gradient-surgery strategies as their authors' code defines them.

Source: ``sustech-nlp/SAGO``, ``src/trainer/unlearn/grad_surgery.py`` (``GradSurgeryMixin``):
constant weights α (retain) and γ (forget) on the *raw* gradients (no normalisation), the
combined gradient handed to the trainer's optimizer (AdamW) as ``.grad``. Their forget loss
is the negative NLL, so their forget gradient is ``h = −g_F`` in this package's convention
(``g_F`` is the gradient of the loss the step *increases*); every formula below is theirs
with ``h = −g_F`` substituted, so ``d`` is the gradient they hand to the optimizer.

With ``r = g_R``, ``f = g_F``, ``rr = ‖r‖²``, ``ff = ‖f‖²``, ``rf = r·f`` and the authors'
``ε = 1e-10`` in the projections:

* ``surgery_sago``: per coordinate, ``d = α·r`` where the signs of ``r`` and ``h`` conflict
  (``r_i·f_i > 0``), else ``d = γ·h = −γ·f``;
* ``surgery_sago_prefer_retain``: ``d = α·r`` on conflicts, else ``α·r − γ·f``;
* ``surgery_pcgrad`` (per tensor): if ``h·r < 0`` (``rf > 0``), ``h ← h − (h·r/(rr + ε))·r``;
  ``d = γ·h + α·r``, i.e. ``(w_R, w_F) = (α + γ·rf/(rr + ε), γ)`` where ``rf > 0``, else
  ``(α, γ)``, with ``rr, rf`` of each tensor;
* ``surgery_pcgrad_global``: the same with the global ``rr, rf``;
* ``surgery_blur``: the retain gradient is projected off the forget one,
  ``r ← r − (r·h/(‖h‖² + ε))·h``, and ``d = γ·h + α·r``:
  ``(w_R, w_F) = (α, γ + α·rf/(ff + ε))`` (always, whatever the sign of ``rf``).

Lemma 4 (this package's ``rr``, ``ff``, ``rf``):

* both SAGO masks give ``d_i·r_i ≥ 0`` at every coordinate (retain side, per coordinate);
  the forget side can fail;
* the PCGrad ones give ``g_R·d = α·rr − γ·rf·ε/(rr + ε)`` where ``rf > 0`` (per tensor for
  ``surgery_pcgrad``), so the retain side holds exactly only with ``eps=0``; with the
  authors' ``ε`` a tensor whose ``rr`` is not large against ε can push it below zero;
* blur gives ``g_F·d = α·rf·ε/(ff + ε) − γ·ff``: the forget side holds with ``eps=0``;
  ``g_R·d = α·(rr − rf²/(ff + ε)) − γ·rf`` has no sign.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._common import columns, pair

__all__ = ["DEFAULT_ALPHA", "DEFAULT_EPS", "DEFAULT_GAMMA", "blur", "masked", "pcgrad_projected"]

#: the authors' defaults: ``alpha = gamma = 1`` and ``eps = 1e-10`` in the projections.
DEFAULT_ALPHA = 1.0
DEFAULT_GAMMA = 1.0
DEFAULT_EPS = 1e-10


def masked(gram: Tensor, losses: Tensor, noise: Tensor, alpha: float = DEFAULT_ALPHA,
           gamma: float = DEFAULT_GAMMA) -> Tensor:
    """Constant weights ``(α, γ)`` for the two elementwise SAGO strategies (the mask itself is
    applied per coordinate by the combine mode ``"sago"`` or ``"sago_prefer_retain"``)."""
    shape = gram.shape[:-1]
    return pair(torch.full(shape, alpha, dtype=gram.dtype, device=gram.device),
                torch.full(shape, gamma, dtype=gram.dtype, device=gram.device))


def pcgrad_projected(gram: Tensor, losses: Tensor, noise: Tensor, alpha: float = DEFAULT_ALPHA,
                     gamma: float = DEFAULT_GAMMA, eps: float = DEFAULT_EPS) -> Tensor:
    """``(α + γ·rf/(rr + ε), γ)`` where ``rf > 0`` (the forget gradient conflicts with the
    retain one and is projected), else ``(α, γ)``; per row of ``gram`` (global or per
    tensor). A row with ``rr + ε = 0`` (no retain gradient, ``ε = 0``) is not projected."""
    rr, _, rf = columns(gram)
    den = rr + eps
    project = (rf > 0) & (den > 0)
    ratio = torch.where(project, rf / torch.where(project, den, torch.ones_like(den)),
                        torch.zeros_like(rf))
    return pair(alpha + gamma * ratio, torch.full_like(rr, gamma))


def blur(gram: Tensor, losses: Tensor, noise: Tensor, alpha: float = DEFAULT_ALPHA,
         gamma: float = DEFAULT_GAMMA, eps: float = DEFAULT_EPS) -> Tensor:
    """``(α, γ + α·rf/(ff + ε))``: the retain gradient with its component along the forget
    gradient removed, plus γ times the forget direction (``rf/(ff + ε)`` is 0 when
    ``ff + ε = 0``)."""
    _, ff, rf = columns(gram)
    den = ff + eps
    ok = den > 0
    ratio = torch.where(ok, rf / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(rf))
    return pair(torch.full_like(ff, alpha), gamma + alpha * ratio)

"""Retain and forget objectives, written as the quantity each closure hands the optimizer.

:class:`fastngd.NGDiffOptimizer` *decreases* the retain closure's value and *increases* the
forget closure's value. With per-example ``nll_i = −log π(y_i|x_i)`` (summed over the target
tokens) and ``n_i = |y_i|`` (see :mod:`fastngd.unlearn.tasks`):

* retain, and the ``"ce"`` forget objective: the token-mean cross-entropy
  ``CE = Σ_i nll_i / Σ_i n_i`` (ascending it on the forget batch is gradient ascent);
  with the option ``cap`` = C (nats per token), ``CE_C = Σ_i min(nll_i, C·n_i) / Σ_i n_i``:
  an example whose token-mean loss ``nll_i / n_i`` has reached C adds a constant and no
  gradient, so the ascent works on the examples not yet forgotten instead of pushing the
  forgotten ones further;
* ``"npo"``: ``L_NPO = mean_i −(2/β)·log σ(−β·(log π(y_i|x_i) − log π_ref(y_i|x_i)))`` on
  sequence-summed log-probabilities, π_ref the frozen model before unlearning (β = 0.1).
  Minimising ``L_NPO`` unlearns, so the forget closure returns ``−L_NPO``;
* ``"simnpo"``: ``L_SimNPO = mean_i −(2/β)·log σ(β·nll_i/n_i − δ)`` (β = 4.5, δ = 0), i.e.
  NPO without a reference and with a length-normalised log-probability:
  ``−(β/|y|)·log π(y|x) = β·nll/|y|``. Minimising it raises the mean NLL, so the forget
  closure returns ``−L_SimNPO``.

At the start of NPO, π = π_ref and ``L_NPO = (2/β)·log 2``; ``L_SimNPO`` decreases towards 0
as the forget answers become unlikely.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from fastngd.errors import UsageError

__all__ = [
    "FORGET_OBJECTIVES",
    "ForgetObjective",
    "capped_mean_nll",
    "get_objective",
    "mean_nll",
    "npo_loss",
    "simnpo_loss",
]


def mean_nll(nll: Tensor, n: Tensor, denominator: Tensor | None = None) -> Tensor:
    """Token-mean cross-entropy ``Σ nll_i / Σ n_i`` (the causal-LM loss of a batch).

    With ``denominator`` the sum is divided by it instead of ``Σ n_i``: under ``torchrun``
    each rank passes ``N / W`` (N the tokens of the whole batch over all W ranks), so the
    mean over ranks of the returned values, ``Σ_r Σ nll / N``, is the full batch's token
    mean exactly, and DDP's average of the gradients is its gradient.
    """
    if denominator is not None:
        if not bool(denominator > 0):
            raise ValueError("the batch has no target token (every label is -100)")
        return nll.sum() / denominator.to(nll)
    total = n.sum()
    if not bool(total > 0):
        raise ValueError("the batch has no target token (every label is -100)")
    return nll.sum() / total


def capped_mean_nll(nll: Tensor, n: Tensor, cap: float,
                    denominator: Tensor | None = None) -> Tensor:
    """``Σ_i min(nll_i, cap·n_i) / Σ_i n_i``: the token-mean cross-entropy with each
    example's contribution capped at ``cap`` nats per token (zero gradient above it).
    ``denominator`` as in :func:`mean_nll`."""
    return mean_nll(torch.minimum(nll, cap * n.to(nll)), n, denominator)


def npo_loss(nll: Tensor, ref_nll: Tensor, beta: float = 0.1) -> Tensor:
    """``L_NPO = mean_i −(2/β)·log σ(−β·(log π_i − log π_ref,i))`` with ``log π = −nll``.

    ``nll`` and ``ref_nll`` are sequence-summed NLLs ``[B]`` of the current and reference
    models. Computed with ``logsigmoid`` (stable for large arguments).
    """
    if not beta > 0:
        raise ValueError(f"NPO needs beta > 0, got {beta}")
    log_ratio = (-nll) - (-ref_nll.to(nll))
    return (-(2.0 / beta) * F.logsigmoid(-beta * log_ratio)).mean()


def simnpo_loss(nll: Tensor, n: Tensor, beta: float = 4.5, delta: float = 0.0) -> Tensor:
    """``L_SimNPO = mean_i −(2/β)·log σ(β·nll_i/n_i − δ)`` (length-normalised, no reference)."""
    if not beta > 0:
        raise ValueError(f"SimNPO needs beta > 0, got {beta}")
    if bool((n <= 0).any()):
        raise ValueError("SimNPO needs at least one target token per example")
    return (-(2.0 / beta) * F.logsigmoid(beta * nll / n - delta)).mean()


@dataclass(frozen=True)
class ForgetObjective:
    """A forget objective: the value the forget closure returns (to be *increased*).

    Attributes:
        name: ``"ce"``, ``"npo"`` or ``"simnpo"``.
        options: ``beta`` (NPO, SimNPO) and ``delta`` (SimNPO).
    """

    name: str
    options: dict[str, float] = field(default_factory=dict)

    @property
    def needs_reference(self) -> bool:
        """Whether reference NLLs of the initial model are needed (NPO)."""
        return self.name == "npo"

    def __call__(
        self, nll: Tensor, n: Tensor, ref_nll: Tensor | None = None,
        denominator: Tensor | None = None,
    ) -> Tensor:
        """The forget closure's value: ``CE``, ``−L_NPO`` or ``−L_SimNPO``.

        ``denominator`` replaces ``Σ n_i`` in the token mean of ``CE`` (see
        :func:`mean_nll`); NPO and SimNPO are means over examples, exact under ``torchrun``
        as they are (every rank holds the same number of examples).
        """
        if self.name == "ce":
            if "cap" in self.options:
                return capped_mean_nll(nll, n, self.options["cap"], denominator)
            return mean_nll(nll, n, denominator)
        if self.name == "npo":
            if ref_nll is None:
                raise ValueError("the NPO objective needs the reference NLLs of the initial model")
            return -npo_loss(nll, ref_nll, self.options.get("beta", 0.1))
        return -simnpo_loss(
            nll, n, self.options.get("beta", 4.5), self.options.get("delta", 0.0)
        )

    def describe(self) -> str:
        """A short human-readable form, e.g. ``"npo(beta=0.1)"``."""
        if not self.options:
            return self.name
        opts = ", ".join(f"{k}={v:g}" for k, v in sorted(self.options.items()))
        return f"{self.name}({opts})"


FORGET_OBJECTIVES: dict[str, dict[str, float]] = {
    "ce": {},
    "npo": {"beta": 0.1},
    "simnpo": {"beta": 4.5, "delta": 0.0},
}
"""Forget objectives by name, with their default options."""

_OPTIONAL: dict[str, tuple[str, ...]] = {"ce": ("cap",)}
"""Options an objective takes without a default (absent: not applied)."""


def get_objective(name: str, **options: Any) -> ForgetObjective:
    """The forget objective ``name`` with its defaults overridden by ``options``.

    Raises ValueError for an unknown name or option (listing the valid ones) and for a
    non-positive or non-finite ``beta``.
    """
    if name not in FORGET_OBJECTIVES:
        raise UsageError(f"unknown forget objective {name!r}; valid: {sorted(FORGET_OBJECTIVES)}")
    merged = dict(FORGET_OBJECTIVES[name])
    for key, value in options.items():
        if value is None:
            continue
        valid = sorted([*merged, *_OPTIONAL.get(name, ())])
        if key not in valid:
            raise UsageError(
                f"forget objective {name!r} takes no option {key!r}; valid: {valid}"
            )
        merged[key] = float(value)
    for key in ("beta", "cap"):
        value = merged.get(key)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{name}: {key} must be a finite positive number, got {value}")
    return ForgetObjective(name, merged)

"""Unlearning methods by name: a combine rule of :mod:`fastngd.rules` plus a forget objective.

Every method updates ``θ ← θ − η·(w_R·g_R − w_F·g_F)`` with g_R the gradient of the retain
cross-entropy and g_F that of the method's forget objective (:mod:`.objectives`):

=================  =====================  ====================
method             rule (w_R, w_F)        forget objective
=================  =====================  ====================
``ngdiff``         ngdiff                 ce
``gdiff``          gdiff, c = 0.5         ce
``gdiff-<c>``      gdiff, (c, 1 − c)      ce
``ga``             ga (0, 1)              ce
``gd``             gd (1, 0)              ce
``lossnorm``       lossnorm               ce
``npo``            gdiff, c = 0.5         npo (β = 0.1)
``simnpo``         gdiff, c = 0.5         simnpo (β = 4.5, δ = 0)
``rlw``            rlw                    ce
``pcgrad``         pcgrad                 ce
``pcgrad_retain``  pcgrad_retain          ce
``imtlg``          imtlg                  ce
``mgda``           mgda                   ce
``sago``           sago                   ce
=================  =====================  ====================

``npo`` and ``simnpo`` are "NPO + retain loss": ``d = ½(g_R + g_{L_NPO})`` (the gradient of
``−L_NPO`` is ``−g_{L_NPO}``), the equal-weight sum of the two losses. Every method runs
with or without GeN AutoLR.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastngd.errors import UsageError
from fastngd.rules import get_rule

__all__ = ["METHODS", "Method", "get_method", "method_names"]


@dataclass(frozen=True)
class Method:
    """A named method: ``rule`` and ``rule_options`` for :class:`fastngd.NGDiffOptimizer` and
    the forget objective's name (``"ce"``, ``"npo"``, ``"simnpo"``)."""

    name: str
    rule: str
    objective: str = "ce"
    rule_options: dict[str, Any] = field(default_factory=dict)
    description: str = ""


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ngdiff", "ngdiff", description="normalized gradient difference"),
        Method("gdiff", "gdiff", rule_options={"c": 0.5}, description="gradient difference, c=0.5"),
        Method("ga", "ga", description="gradient ascent on the forget set"),
        Method("gd", "gd", description="gradient descent on the retain set only"),
        Method("lossnorm", "lossnorm", description="losses normalised by their values"),
        Method("npo", "gdiff", "npo", {"c": 0.5}, "negative preference optimization + retain"),
        Method("simnpo", "gdiff", "simnpo", {"c": 0.5}, "SimNPO + retain"),
        Method("rlw", "rlw", description="random loss weighting"),
        Method("pcgrad", "pcgrad", description="projected conflicting gradients"),
        Method("pcgrad_retain", "pcgrad_retain", description="PCGrad, forget side projected"),
        Method("imtlg", "imtlg", description="impartial multi-task learning (gradient)"),
        Method("mgda", "mgda", description="multiple-gradient descent"),
        Method("sago", "sago", description="sign-constrained, retain-prioritised synthesis"),
    )
}
"""Methods by name (``gdiff-<c>`` names are accepted by :func:`get_method` too)."""

_GDIFF_C = re.compile(r"^gdiff[-_]([0-9]*\.?[0-9]+)$")


def method_names() -> list[str]:
    """Every registered name, plus the ``gdiff-<c>`` pattern."""
    return sorted(METHODS) + ["gdiff-<c> (0 <= c <= 1)"]


def get_method(name: str) -> Method:
    """The method called ``name`` (case-insensitive); ``gdiff-0.9`` is GDiff with c = 0.9.

    Raises :class:`fastngd.errors.UsageError` (a ``ValueError``) listing the valid names for
    an unknown name or a c outside [0, 1].
    """
    if not isinstance(name, str):
        raise TypeError(f"method must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    if key in METHODS:
        return METHODS[key]
    match = _GDIFF_C.match(key)
    if match:
        c = float(match.group(1))
        if not 0.0 <= c <= 1.0:
            raise UsageError(f"gdiff needs 0 <= c <= 1, got {name!r}")
        get_rule("gdiff", c=c)
        return Method(f"gdiff-{c:g}", "gdiff", rule_options={"c": c},
                      description=f"gradient difference, c={c:g}")
    raise UsageError(f"unknown method {name!r}; valid methods: {', '.join(method_names())}")

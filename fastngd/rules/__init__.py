"""Combine rules: pure functions ``(gram, losses, noise) -> [w_R, w_F]`` and their guarantees.

``gram = [rr, ff, rf] = [‖g_R‖², ‖g_F‖², g_R·g_F]`` (global over all parameters, or one row
per tensor for the per-tensor rules), ``losses = [L_R, L_F]`` (detached), ``noise`` a
standard-normal pair for randomised rules. A rule returns weights of shape ``gram.shape[:-1]
+ (2,)``; the direction is ``d = combine(g_R, g_F, w_R, w_F, rule.mode)``
(:func:`fastngd.rules.elementwise.combine`; ``d = w_R·g_R − w_F·g_F`` for linear rules) and
the step descends along it. No rule synchronises with the host.

:data:`RULES` is the rule table: each :class:`CombineRule` says which side of Lemma 4 it
guarantees (``retain_safe``: ``g_R·d ≥ 0``; ``forget_safe``: ``g_F·d ≤ 0``; for every pair of
gradients), and the tests check exactly those rows, with a counterexample for every side a
rule does not guarantee.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any, Callable

from torch import Tensor

from . import surgery
from .elementwise import MODES
from .gdiff import DEFAULT_C, ga, gd, gdiff
from .imtlg import imtlg
from .lossnorm import lossnorm
from .mgda import mgda
from .ngdiff import ngdiff
from .pcgrad import pcgrad, pcgrad_retain
from .rlw import rlw
from .sago import sago

__all__ = ["RULES", "CombineRule", "ga", "gd", "gdiff", "get_rule", "imtlg", "lossnorm", "mgda",
           "ngdiff", "pcgrad", "pcgrad_retain", "rlw", "sago", "surgery"]

WeightFn = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class CombineRule:
    """A named combine rule and the guarantees it gives.

    Attributes:
        name: registry name (with its options, e.g. ``"gdiff-0.3"``).
        weights: ``(gram, losses, noise) -> [w_R, w_F]`` over the last axis of ``gram``.
        mode: the combine mode of :func:`fastngd.rules.elementwise.combine`: ``"linear"``,
            or a per-coordinate SAGO mask (``"sago"``, ``"sago_prefer_retain"``).
        per_tensor: the weights come from each tensor's own Gram row (``gram`` of shape
            ``(n, 3)``) instead of the global one.
        needs_losses: the weights use ``losses`` (both must be given).
        random: draws ``noise`` every step.
        retain_safe: guarantees ``g_R·d ≥ 0`` (the retain side of Lemma 4).
        forget_safe: guarantees ``g_F·d ≤ 0`` (the forget side of Lemma 4).
        per_coordinate: the retain side holds coordinate by coordinate
            (``d_i·g_R,i ≥ 0`` for every i).
    """

    name: str
    weights: WeightFn
    mode: str = "linear"
    per_tensor: bool = False
    needs_losses: bool = False
    random: bool = False
    retain_safe: bool = False
    forget_safe: bool = False
    per_coordinate: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown combine mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.per_coordinate and not self.retain_safe:
            raise ValueError("per_coordinate implies retain_safe")

    @property
    def elementwise(self) -> bool:
        """Whether the direction uses a per-coordinate mask (``mode != "linear"``)."""
        return self.mode != "linear"


def _safe(name: str, fn: WeightFn) -> CombineRule:
    """A linear rule with both sides of Lemma 4."""
    return CombineRule(name, fn, retain_safe=True, forget_safe=True)


def _masked(name: str, fn: WeightFn, mode: str) -> CombineRule:
    """A per-coordinate SAGO mask: the retain side, coordinate by coordinate."""
    return CombineRule(name, fn, mode=mode, retain_safe=True, per_coordinate=True)


RULES: dict[str, CombineRule] = {
    "ngdiff": _safe("ngdiff", ngdiff),
    "gdiff": CombineRule(f"gdiff-{DEFAULT_C:g}", gdiff),
    "gd": CombineRule("gd", gd, retain_safe=True),
    "ga": CombineRule("ga", ga, forget_safe=True),
    "lossnorm": CombineRule("lossnorm", lossnorm, needs_losses=True),
    "rlw": CombineRule("rlw", rlw, random=True),
    "pcgrad": _safe("pcgrad", pcgrad),
    "pcgrad_retain": CombineRule("pcgrad_retain", pcgrad_retain, retain_safe=True),
    "imtlg": _safe("imtlg", imtlg),
    "mgda": _safe("mgda", mgda),
    "sago": _masked("sago", sago, "sago"),
    "surgery_sago": _masked("surgery_sago", surgery.masked, "sago"),
    "surgery_sago_prefer_retain": _masked("surgery_sago_prefer_retain", surgery.masked,
                                          "sago_prefer_retain"),
    "surgery_pcgrad": CombineRule("surgery_pcgrad", surgery.pcgrad_projected, per_tensor=True),
    "surgery_pcgrad_global": CombineRule("surgery_pcgrad_global", surgery.pcgrad_projected),
    "surgery_blur": CombineRule("surgery_blur", surgery.blur),
}

#: options each rule takes, with their defaults.
_OPTIONS: dict[str, dict[str, float]] = {
    "gdiff": {"c": DEFAULT_C},
    "surgery_sago": {"alpha": surgery.DEFAULT_ALPHA, "gamma": surgery.DEFAULT_GAMMA},
    "surgery_sago_prefer_retain": {"alpha": surgery.DEFAULT_ALPHA,
                                   "gamma": surgery.DEFAULT_GAMMA},
    "surgery_pcgrad": {"alpha": surgery.DEFAULT_ALPHA, "gamma": surgery.DEFAULT_GAMMA,
                       "eps": surgery.DEFAULT_EPS},
    "surgery_pcgrad_global": {"alpha": surgery.DEFAULT_ALPHA, "gamma": surgery.DEFAULT_GAMMA,
                              "eps": surgery.DEFAULT_EPS},
    "surgery_blur": {"alpha": surgery.DEFAULT_ALPHA, "gamma": surgery.DEFAULT_GAMMA,
                     "eps": surgery.DEFAULT_EPS},
}


def _option_values(key: str, options: dict[str, Any]) -> dict[str, float]:
    known = _OPTIONS.get(key, {})
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = f"takes only {sorted(known)}" if known else "takes no options"
        raise TypeError(f"rule {key!r} {takes}, got {unknown}")
    values = dict(known)
    for name, value in options.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"rule {key!r}: option {name} must be a number, got {value!r}") from None
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"rule {key!r}: option {name} must be finite and >= 0, got {value!r}")
        values[name] = v
    if key == "gdiff" and not values["c"] <= 1.0:
        raise ValueError(f"gdiff needs 0 <= c <= 1, got c={values['c']}")
    return values


def _with_options(key: str, values: dict[str, float]) -> CombineRule:
    rule = RULES[key]
    if values == _OPTIONS[key]:
        return rule
    if key == "gdiff":
        return replace(rule, name=f"gdiff-{values['c']:g}",
                       weights=functools.partial(gdiff, c=values["c"]))
    label = ",".join(f"{k}={v:g}" for k, v in values.items())
    exact = values.get("eps", 1.0) == 0.0  # see fastngd.rules.surgery
    return replace(rule, name=f"{key}[{label}]", weights=functools.partial(rule.weights, **values),
                   retain_safe=rule.retain_safe or (exact and key != "surgery_blur"),
                   forget_safe=rule.forget_safe or (exact and key == "surgery_blur"))


def get_rule(name: str, **options: Any) -> CombineRule:
    """Look a rule up by name, binding its options (e.g. ``get_rule("gdiff", c=0.9)``).

    ``gdiff`` takes ``c`` (default 0.5, vanilla GDiff: the rule is then named
    ``"gdiff-0.5"``); the ``surgery_*`` rules take ``alpha``, ``gamma`` (default 1) and the
    projecting ones ``eps`` (default 1e-10, the authors' value; ``eps=0`` makes their Lemma-4
    side exact). Raises ``ValueError`` for an unknown name (listing the valid ones) or a bad
    value, and ``TypeError`` for an option the rule does not take.
    """
    key = name.lower().replace("-", "_")
    if key not in RULES:
        raise ValueError(f"unknown rule {name!r}; valid rules: {', '.join(sorted(RULES))}")
    values = _option_values(key, options)
    return _with_options(key, values) if key in _OPTIONS else RULES[key]

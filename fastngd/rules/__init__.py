"""Combine rules: pure functions ``(gram, losses, noise) -> (w_R, w_F)``.

``gram = [rr, ff, rf] = [‖g_R‖², ‖g_F‖², g_R·g_F]`` (global over all parameters), ``losses =
[L_R, L_F]`` (detached), ``noise`` a standard-normal pair for randomised rules. Every rule
returns the ``(2,)`` tensor ``[w_R, w_F]`` of the update direction ``d = w_R·g_R − w_F·g_F``
(``θ ← θ − η·d``), on ``gram``'s device, with no host synchronisation. ``sago`` is elementwise:
its weights are used with a per-coordinate mask (see :func:`fastngd.rules.sago.sago`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

from torch import Tensor

from .gdiff import ga, gd, gdiff
from .imtlg import imtlg
from .lossnorm import lossnorm
from .mgda import mgda
from .ngdiff import ngdiff
from .pcgrad import pcgrad, pcgrad_retain
from .rlw import rlw
from .sago import sago

__all__ = [
    "CombineRule",
    "RULES",
    "get_rule",
    "ngdiff",
    "gdiff",
    "gd",
    "ga",
    "lossnorm",
    "rlw",
    "pcgrad",
    "pcgrad_retain",
    "imtlg",
    "mgda",
    "sago",
]

WeightFn = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class CombineRule:
    """A named combine rule and the guarantees it gives.

    Attributes:
        name: registry name.
        weights: ``(gram, losses, noise) -> [w_R, w_F]``.
        elementwise: the direction uses the per-coordinate SAGO mask.
        retain_safe: guarantees ``g_R·d ≥ 0`` (the retain side of Lemma 4).
        forget_safe: guarantees ``g_F·d ≤ 0`` (the forget side of Lemma 4).
        random: draws ``noise`` every step.
    """

    name: str
    weights: WeightFn
    elementwise: bool = False
    retain_safe: bool = False
    forget_safe: bool = False
    random: bool = False


RULES: dict[str, CombineRule] = {
    "ngdiff": CombineRule("ngdiff", ngdiff, retain_safe=True, forget_safe=True),
    "gdiff": CombineRule("gdiff", gdiff),
    "gd": CombineRule("gd", gd),
    "ga": CombineRule("ga", ga),
    "lossnorm": CombineRule("lossnorm", lossnorm),
    "rlw": CombineRule("rlw", rlw, random=True),
    "pcgrad": CombineRule("pcgrad", pcgrad, retain_safe=True, forget_safe=True),
    "pcgrad_retain": CombineRule("pcgrad_retain", pcgrad_retain, retain_safe=True),
    "imtlg": CombineRule("imtlg", imtlg, retain_safe=True, forget_safe=True),
    "mgda": CombineRule("mgda", mgda, retain_safe=True, forget_safe=True),
    "sago": CombineRule("sago", sago, elementwise=True, retain_safe=True),
}


def get_rule(name: str, **options: Any) -> CombineRule:
    """Look a rule up by name, binding its options (e.g. ``get_rule("gdiff", c=0.9)``).

    Raises ``ValueError`` for an unknown name (listing the valid ones) and ``TypeError`` for
    an option the rule does not take.
    """
    key = name.lower().replace("-", "_")
    if key not in RULES:
        raise ValueError(f"unknown rule {name!r}; valid rules: {', '.join(sorted(RULES))}")
    rule = RULES[key]
    if not options:
        return rule
    if key == "gdiff":
        c = float(options.pop("c", 0.5))
        if options:
            raise TypeError(f"rule 'gdiff' takes only 'c', got {sorted(options)}")
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"gdiff needs 0 <= c <= 1, got c={c}")
        return CombineRule(f"gdiff-{c:g}", functools.partial(gdiff, c=c))
    raise TypeError(f"rule {name!r} takes no options, got {sorted(options)}")

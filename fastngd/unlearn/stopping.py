"""Stopping rules for :func:`fastngd.unlearn.unlearn`: callbacks that end a run once the
forget set is unlearned, instead of always running every epoch.

:class:`ForgetLossStop` watches the forget objective of each step record (``loss_forget``:
the forget closure's value, the cross-entropy of the forget batch for the CE methods):

    S_k = β·S_{k−1} + (1 − β)·L_F,k      (S_1 = L_F,1; β = ``ema``)

and stops after the first step ``k ≥ min_steps`` with ``S_k ≥ L_F,1 + rise``: the smoothed
forget loss has risen by ``rise`` nats above its value at the start. ``max_steps`` ends the
run in any case (the loop's ``epochs`` is the other bound).

:class:`ExampleLossStop` looks at every forget example instead of the batch mean. The loop
records, per step, the indices of the forget batch (``forget_indices``) and each example's
token-mean cross-entropy ``ℓ_i = nll_i / n_i`` (``forget_losses``, whatever the forget
objective). For each example seen so far it keeps its first value ``a_i`` and its latest
value ``b_i``; with ``r_i = b_i − a_i`` (0 for an example seen once) it stops after the first
step ``k ≥ min_steps`` with

    Q_q({r_i}) ≥ rise        (Q_q: ``numpy.quantile``, linear interpolation; q = 0: the minimum)

i.e. all but a fraction q of the examples seen have risen by ``rise`` nats above their own
first value, and, when it has a ``floor`` (a :class:`ForgetLossStop`), once that rule has
fired as well. A mean that has risen far can hide a few examples the model still answers;
this rule waits for them.

:class:`ForgetGapStop` is the rule of the bounded forget target ``"refuse"``
(:mod:`fastngd.unlearn.forget_target`), whose forget value F never exceeds the cap C
(``forget_cap`` in each step record). It smooths the gap ``G_k = C − F_k ≥ 0`` the same way,

    T_k = β·T_{k−1} + (1 − β)·G_k      (T_1 = G_1)

and stops after the first step ``k ≥ min_steps`` with ``T_k ≤ gap`` and, per example
(``per_example``, the default), with every forget example seen so far within the gap the last
time it was in a batch:

    g_i = C − ℓ_i + ℓ_i^∅ ≤ gap      for every example i seen

where ``ℓ_i`` is its token-mean capped loss (``forget_losses``) and ``ℓ_i^∅`` its
empty-continuation loss (``forget_empty``; 0 for classifiers, which have none). Both terms
of ``g_i`` are ≥ 0, so with the default ``gap = ln 2`` on QA data ``ℓ_i^∅ ≤ ln 2``: the model
gives the empty answer probability at least ½ after *each* forget question, so greedy decoding
answers it with nothing, and its answer tokens are on average within ln 2 of the cap. On raw
text the same holds for ending each document; for a classifier, ``π(y_i | x_i) ≤ 2/K``
for each example. The mean alone can hide a few examples that the model still answers.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from fastngd.unlearn.config import UnlearnConfig

__all__ = ["ExampleLossStop", "ForgetGapStop", "ForgetLossStop", "stopping_rule"]


def _check_positive(name: str, value: Any) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_ema(ema: float) -> None:
    if not 0.0 <= ema < 1.0:
        raise ValueError(f"ema must be in [0, 1), got {ema}")


def _ema(smoothed: float | None, value: float, ema: float) -> float:
    """One step of ``S_k = β·S_{k−1} + (1 − β)·x_k`` (``S_1 = x_1``)."""
    return value if smoothed is None else ema * smoothed + (1.0 - ema) * value


def _decide(rule: Any, done: bool, step: int) -> bool:
    """``done``, or True once ``step`` has reached ``rule.max_steps``; the first step that
    stops is kept in ``rule.stopped_at``."""
    if rule.max_steps is not None and step >= rule.max_steps:
        done = True
    if done and rule.stopped_at is None:
        rule.stopped_at = step
    return done


@dataclass
class ForgetLossStop:
    """Stop once the smoothed forget loss has risen by ``rise`` (a step callback: returns
    True to stop; see the module docstring).

    Attributes:
        rise: the rise of the smoothed forget loss over its first value, in nats (> 0).
        ema: β of the smoothing, in [0, 1).
        min_steps: never stop before this many steps.
        max_steps: stop after this many steps (None: no bound here).
    """

    rise: float
    ema: float = 0.9
    min_steps: int = 0
    max_steps: int | None = None
    start: float | None = field(default=None, init=False)
    smoothed: float | None = field(default=None, init=False)
    stopped_at: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        _check_positive("rise", self.rise)
        _check_ema(self.ema)

    def __call__(self, record: Mapping[str, Any]) -> bool:
        loss = float(record["loss_forget"])
        step = int(record["step"])
        if self.start is None:
            self.start = loss
        self.smoothed = _ema(self.smoothed, loss, self.ema)
        return _decide(self, step >= self.min_steps and self.smoothed >= self.start + self.rise,
                       step)


@dataclass
class ForgetGapStop:
    """Stop once the smoothed gap ``C − F`` of the bounded forget target has fallen to
    ``gap`` and, with ``per_example``, every forget example seen is within ``gap`` (a step
    callback: returns True to stop; see the module docstring). Records without
    ``forget_cap`` (an unbounded target) never stop it, except by ``max_steps``; records
    without ``forget_indices``/``forget_losses`` leave the per-example condition to the
    examples seen in other records (none seen: the mean condition alone).

    Attributes:
        gap: the gap at which to stop, in nats (> 0).
        ema: β of the smoothing of the mean gap, in [0, 1).
        min_steps: never stop before this many steps.
        max_steps: stop after this many steps (None: no bound here).
        per_example: also require ``g_i ≤ gap`` of every example seen.
        latest: ``g_i`` by example index, from the last batch that held it.
    """

    gap: float = math.log(2.0)
    ema: float = 0.9
    min_steps: int = 0
    max_steps: int | None = None
    per_example: bool = True
    smoothed: float | None = field(default=None, init=False)
    latest: dict[int, float] = field(default_factory=dict, init=False)
    stopped_at: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        _check_positive("gap", self.gap)
        _check_ema(self.ema)

    def observe(self, record: Mapping[str, Any], cap: float) -> None:
        """Update ``g_i`` of the examples of one record (non-finite values are skipped: an
        example without a scored token)."""
        indices, losses = record.get("forget_indices"), record.get("forget_losses")
        if indices is None or losses is None:
            return
        empty = record.get("forget_empty") or [0.0] * len(losses)
        if not len(indices) == len(losses) == len(empty):
            raise ValueError(f"forget_indices ({len(indices)}), forget_losses ({len(losses)}) "
                             f"and forget_empty ({len(empty)}) differ in length")
        for index, loss, none in zip(indices, losses, empty):
            value = cap - float(loss) + float(none)
            if math.isfinite(value):
                self.latest[int(index)] = value

    def __call__(self, record: Mapping[str, Any]) -> bool:
        step = int(record["step"])
        cap = record.get("forget_cap")
        done = False
        if cap is not None:
            self.smoothed = _ema(self.smoothed, float(cap) - float(record["loss_forget"]),
                                 self.ema)
            done = step >= self.min_steps and self.smoothed <= self.gap
            if self.per_example:
                self.observe(record, float(cap))
                done = done and all(g <= self.gap for g in self.latest.values())
        return _decide(self, done, step)


@dataclass
class ExampleLossStop:
    """Stop once (nearly) every forget example's loss has risen by ``rise`` nats above its
    own first value (a step callback: returns True to stop; see the module docstring).

    Reads ``forget_indices`` and ``forget_losses`` of each step record (the loop of
    :func:`fastngd.unlearn.unlearn` writes them); non-finite losses (an example without a
    target token) are not tracked.

    Attributes:
        rise: the rise ``r`` each example's token-mean loss must reach, in nats (> 0).
        quantile: ``q`` in [0, 1): the q-quantile of the rises must reach ``rise``
            (0: every example seen; 0.1: all but the lowest 10 %).
        min_steps: never stop before this many steps.
        max_steps: stop after this many steps (None: no bound here).
        floor: a :class:`ForgetLossStop` that must have fired too (it sees every record;
            None: the per-example condition alone).
        first, latest: ``a_i`` and ``b_i`` by example index.
    """

    rise: float
    quantile: float = 0.0
    min_steps: int = 0
    max_steps: int | None = None
    floor: ForgetLossStop | None = None
    first: dict[int, float] = field(default_factory=dict, init=False)
    latest: dict[int, float] = field(default_factory=dict, init=False)
    stopped_at: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        _check_positive("rise", self.rise)
        if not (isinstance(self.quantile, (int, float)) and 0.0 <= self.quantile < 1.0):
            raise ValueError(f"quantile must be in [0, 1), got {self.quantile!r}")

    def rises(self) -> list[float]:
        """``r_i = b_i − a_i`` of every tracked example (in index order)."""
        return [self.latest[i] - self.first[i] for i in sorted(self.first)]

    def observe(self, record: Mapping[str, Any]) -> None:
        """Update ``a_i``/``b_i`` from one step record."""
        indices, losses = record["forget_indices"], record["forget_losses"]
        if len(indices) != len(losses):
            raise ValueError(f"forget_indices ({len(indices)}) and forget_losses "
                             f"({len(losses)}) differ in length")
        for index, loss in zip(indices, losses):
            value = float(loss)
            if not math.isfinite(value):
                continue
            self.first.setdefault(int(index), value)
            self.latest[int(index)] = value

    def __call__(self, record: Mapping[str, Any]) -> bool:
        self.observe(record)
        step = int(record["step"])
        floor_done = True if self.floor is None else bool(self.floor(record))
        rises = self.rises()
        done = (step >= self.min_steps and floor_done and bool(rises)
                and float(np.quantile(rises, self.quantile)) >= self.rise)
        return _decide(self, done, step)


def stopping_rule(config: UnlearnConfig) -> Callable[[Mapping[str, Any]], bool] | None:
    """The stopping rule of ``config``: with the bounded forget target (``forget_target``
    ``"refuse"`` and a cross-entropy method), :class:`ForgetGapStop` when ``stop_gap`` is set
    (else None); otherwise :class:`ExampleLossStop` when ``stop_example_rise`` is set (with
    the mean rule of ``stop_rise`` as its floor when that is set too), else
    :class:`ForgetLossStop` when ``stop_rise`` is set, else None (every epoch runs)."""
    if config.bounded_target:
        if config.stop_gap is None:
            return None
        return ForgetGapStop(config.stop_gap, min_steps=config.stop_min_steps)
    mean = None
    if config.stop_rise is not None:
        mean = ForgetLossStop(config.stop_rise, min_steps=config.stop_min_steps)
    if config.stop_example_rise is None:
        return mean
    return ExampleLossStop(config.stop_example_rise, quantile=config.stop_quantile,
                           min_steps=config.stop_min_steps, floor=mean)

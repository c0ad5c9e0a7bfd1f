"""``UnlearnConfig``: every setting of an unlearning run and its default, in one place.

The Python API (:func:`fastngd.unlearn.unlearn`), the command line (``fastngd unlearn``,
``fastngd reproduce``, ``fastngd demo``) and :class:`fastngd.integrations.NGDiffTrainer`
read their defaults from this dataclass; nothing else restates them.

The defaults were chosen once, on the embedded ``tofu-synthetic`` benchmark only (forget01,
forget05 and forget10; ``bench/quality.py run screen-sgd|screen-sgd2|screen-adam|
screen-adam2|screen-final|seeds``), and are reported as held out on ``people``,
``muse-synthetic``, ``chronicles`` and ``digits``: NGDiff with AutoLR by ``"gen-guard"``
(GeN with the retain-loss safeguard and a trust region of [1/4, 4] × the initial rate,
:class:`fastngd.step_sizes.GuardConfig`), κ = 1.8, refit every 2 steps, EMA 0.9, clip
[1/2, 2], from an initial rate of 0.1 (SGD base; 3e-4 for the Adam base, :data:`BASE_LR`),
forget batches of 8 paired with retain batches of 32, the forget target ``"refuse"``
(:mod:`fastngd.unlearn.forget_target`: each forget token's loss capped at ln V, and the
empty answer as a target), at most 60 epochs, stopping once the smoothed gap of the forget
value to its bound ln V is at most ln 2 after at least 60 steps (with the paper's
``"ascent"`` target: once the smoothed forget loss has risen by 30 nats) and no retain
example the model reproduced before is broken (:mod:`fastngd.unlearn.retain_check`: up to
1024 examples checked, rounds of 4 repair steps, at most 5; added after the defaults above
were chosen, from one run of ``people`` forget05, seed 0). Methods
without AutoLR start from the same rate (fixed then); the update directions have very
different scales (NGDiff's is a difference of unit vectors, GDiff's scales with the raw
gradient norms), which is exactly the sensitivity AutoLR removes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from fastngd.errors import UsageError
from fastngd.unlearn.methods import get_method
from fastngd.unlearn.selection import parse_keep_best

__all__ = [
    "BASE_FLAGS", "BASE_LR", "RUN_CONTROL_FIELDS", "UnlearnConfig", "base_options",
    "check_base_options", "optimizer_kwargs",
]

RUN_CONTROL_FIELDS: frozenset[str] = frozenset(
    {"max_steps", "checkpoint_every", "eval_every"}
)
"""Settings that steer a run without changing its result (where it stops, how often it
checkpoints or evaluates): they may differ when a run is resumed."""

_BACKENDS = ("auto", "torch", "triton")

BASE_LR: dict[str, float] = {"sgd": 0.1, "momentum": 0.01, "adam": 3e-4, "adamw": 3e-4}
"""The default (initial) learning rate per base update (:data:`fastngd.BASES`) of
:meth:`UnlearnConfig.for_base` and of ``--base`` without ``--lr``; ``UnlearnConfig.lr`` is
the SGD base's. The bases' updates have different scales (SGD moves along NGDiff's
difference of unit vectors, Adam by about ``lr`` per coordinate), so one rate does not fit
both. ``sgd`` and ``adam`` were screened; ``adamw`` takes Adam's (the same update scale),
``momentum`` SGD's rate times ``1 − μ`` for the default ``μ = 0.9`` (the same step once the
buffer has filled, ``lr·d/(1 − μ)``)."""

_OPTIMIZER_RESERVED = frozenset({
    "params", "lr", "rule", "rule_options", "autolr", "autolr_every", "autolr_ema",
    "autolr_clip", "autolr_scale", "backend", "retain_storage", "seed",
})


BASE_FLAGS: dict[str, str] = {
    "momentum": "--momentum", "betas": "--betas", "eps": "--eps", "weight_decay": "--weight-decay",
}
"""The base optimizer's hyper-parameters (keys of ``optimizer_options``) and their flags."""


def check_base_options(options: dict[str, Any]) -> str:
    """Check the base-optimizer entries of ``optimizer_options`` (``base`` and the
    hyper-parameters of :data:`BASE_FLAGS`) as :class:`fastngd.NGDiffOptimizer` would, and
    return the base's name (``"sgd"`` when not given).

    Raises :class:`fastngd.errors.UsageError` for an unknown base, a hyper-parameter the
    base does not have (``momentum`` with ``adam``; ``betas``/``eps`` with ``sgd`` or
    ``momentum``) or a value out of its range (``betas`` outside [0, 1), a negative ``eps``
    or ``weight_decay``), naming the option and its command-line flag.
    """
    from fastngd.bases import BASES, get_base

    name = options.get("base", "sgd")
    try:
        base = get_base(name)
    except ValueError as exc:
        raise UsageError(f"base (--base): {exc}") from exc
    given = {key: options[key] for key in BASE_FLAGS if key in options}
    for key in given:
        if key not in base.defaults:
            users = [b for b in BASES if key in get_base(b).defaults]
            raise UsageError(
                f"{key} ({BASE_FLAGS[key]}) applies to base {' or '.join(users)}, not to base "
                f"{base.name} (--base)"
            )
    try:
        base.validate({**base.defaults, **given})
    except ValueError as exc:
        raise UsageError(f"base {base.name}: {exc}") from exc
    return base.name


def base_options(
    base: str | None = None, *, momentum: float | None = None,
    betas: tuple[float, float] | list[float] | None = None, eps: float | None = None,
    weight_decay: float | None = None,
) -> dict[str, Any]:
    """The ``optimizer_options`` entries of a base optimizer and the hyper-parameters that
    are given (``None`` = the base's default), checked by :func:`check_base_options`.

    ``base_options("adamw", weight_decay=0.1)`` → ``{"base": "adamw", "weight_decay": 0.1}``;
    ``base_options("adam", momentum=0.9)`` raises :class:`fastngd.errors.UsageError`.
    """
    options: dict[str, Any] = {}
    if base is not None:
        options["base"] = base
    if momentum is not None:
        options["momentum"] = float(momentum)
    if betas is not None:
        options["betas"] = tuple(float(v) for v in betas)
    for key, value in (("eps", eps), ("weight_decay", weight_decay)):
        if value is not None:
            options[key] = float(value)
    check_base_options(options)
    return options


def _positive_int(name: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")


def _non_negative_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{name} must be an integer >= 0, got {value!r}")


def _finite(name: str, value: Any, low: float = 0.0, high: float = math.inf) -> None:
    """``low < value < high`` and finite."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and low < value < high):
        bounds = f"in ({low:g}, {high:g})" if math.isfinite(high) else f"> {low:g}"
        raise UsageError(f"{name} must be a finite number {bounds}, got {value!r}")


@dataclass(frozen=True)
class UnlearnConfig:
    """Every setting of an unlearning run (compared on resume, except
    :data:`RUN_CONTROL_FIELDS`).

    Attributes:
        method: a name of :func:`fastngd.unlearn.get_method` (``"ngdiff"``, ``"gdiff-0.9"``,
            ``"npo"``...): a combine rule and a forget objective.
        autolr: fit the learning rate with the step-size rule ``step_size`` (``lr`` is
            then the initial rate).
        step_size: the AutoLR step-size rule, a name of
            :data:`fastngd.step_sizes.STEP_SIZES` (``"gen"``: the paper's GeN;
            ``"gen-guard"``: GeN with the retain-loss safeguard and a trust region);
            ``"fixed"`` whenever ``autolr`` is off.
        epochs: passes over the forget set (at most: see ``stop_rise``; a repair round of
            the retain check under way at the limit still runs to its end).
        stop_rise: stop once the smoothed forget loss has risen by this many nats over its
            first value (:class:`fastngd.unlearn.stopping.ForgetLossStop`), after at least
            ``stop_min_steps`` steps; ``None``: run every epoch.
        stop_min_steps: the stopping rule never stops before this many steps.
        stop_example_rise: stop only once the ``stop_quantile``-quantile of the forget
            examples' rises ``r_i = ℓ_i,latest − ℓ_i,first`` (``ℓ_i`` the example's token-mean
            cross-entropy, first and latest value seen) has reached this many nats
            (:class:`fastngd.unlearn.stopping.ExampleLossStop`); with ``stop_rise`` set the
            mean rule must have fired as well (a floor). ``None``: the mean rule alone.
        stop_quantile: ``q`` in [0, 1) of ``stop_example_rise`` (0: every example).
        forget_target: ``"refuse"`` (default) or ``"ascent"`` (the paper's), for the
            cross-entropy methods (:mod:`fastngd.unlearn.forget_target`): ``"refuse"``
            caps each forget token's loss at ln V and subtracts the loss of the empty
            continuation from the forget value (QA data: EOS right after the question; raw
            text: EOS at every position), so that the ascent is bounded and a forget question
            is answered with nothing. NPO and SimNPO keep their objectives.
        stop_gap: with the ``"refuse"`` target, stop once the smoothed gap between the
            forget value and its bound ln V, and the gap of every forget example seen, is
            at most this many nats
            (:class:`fastngd.unlearn.stopping.ForgetGapStop`, after ``stop_min_steps``);
            ``stop_rise`` and ``stop_example_rise`` apply to the ``"ascent"`` target and to
            NPO and SimNPO (``stop_example_rise`` with the ``"refuse"`` target of a
            cross-entropy method is refused). ``None``: every epoch runs.
        retain_check: before a run stops by its stopping rule, check up to this many
            retain examples (a seeded sample of a larger retain set) that the model
            reproduced before unlearning (every scored token its greedy choice) and repair
            those it no longer reproduces (:mod:`fastngd.unlearn.retain_check`). ``None``:
            no check.
        retain_repair_steps: steps of each repair round (their retain batches start with
            the broken examples).
        retain_repair_rounds: the most repair rounds before the run stops anyway (0:
            check and report only). Rounds may take a run past its epoch limit, by at most
            ``retain_repair_rounds × retain_repair_steps`` steps.
        batch_size: forget examples per step.
        retain_batch_size: retain examples per step (``None``: ``batch_size``).
        lr: initial (GeN) or fixed learning rate η of ``θ ← θ − η·d``.
        seed: seeds the data order, the randomised rules and the LoRA initialisation.
        autolr_every, autolr_scale, autolr_ema, autolr_clip: GeN settings
            (:class:`fastngd.autolr.GeNConfig`; κ = ``autolr_scale`` aims at κ·η*).
        objective_options: overrides of the forget objective's options (``beta``, ``delta``).
        backend, retain_storage: passed to :class:`fastngd.NGDiffOptimizer` (``backend``:
            ``"auto"``, ``"torch"`` or ``"triton"``).
        optimizer_options: further keyword arguments of :class:`fastngd.NGDiffOptimizer`,
            passed through untouched: the base optimizer (``base``: ``"sgd"`` by default,
            ``"momentum"``, ``"adam"``, ``"adamw"``) and its ``momentum``, ``betas``,
            ``eps``, ``weight_decay`` (:func:`base_options` builds and checks them), or any
            other argument of the optimizer.
        max_length: token length of encoded QA rows (when rows are given).
        lora_rank: train LoRA adapters of this rank instead of the full model (``peft``);
            only the adapter weights are in the optimizer. ``None``: full model.
        lora_alpha: LoRA scaling numerator (the update is ``(alpha / rank)·B·A``;
            ``None``: ``2 × rank``).
        lora_target_modules: modules that get adapters (peft's ``target_modules``;
            default ``"all-linear"``: every linear layer except the output head).
        eval_every: evaluate every this many steps (besides step 0 and the end).
        keep_best: ``"METRIC:min"`` or ``"METRIC:max"`` (METRIC a metric of the evaluate
            hook or a weighted sum such as ``retain_rouge_l_recall-forget_rouge_l_recall``):
            keep the model state of the best evaluation (see :mod:`.selection`).
        checkpoint_every: steps between whole-run checkpoints (``None``: every epoch).
        max_steps: stop after this many steps in total (the run can be resumed later).
    """

    method: str = "ngdiff"
    autolr: bool = True
    step_size: str = "gen-guard"
    epochs: int = 60
    stop_rise: float | None = 30.0
    stop_min_steps: int = 60
    stop_example_rise: float | None = None
    stop_quantile: float = 0.0
    forget_target: str = "refuse"
    stop_gap: float | None = math.log(2.0)
    retain_check: int | None = 1024
    retain_repair_steps: int = 4
    retain_repair_rounds: int = 5
    batch_size: int = 8
    retain_batch_size: int | None = 32
    lr: float = 0.1
    seed: int = 0
    autolr_every: int = 2
    autolr_scale: float = 1.8
    autolr_ema: float = 0.9
    autolr_clip: tuple[float, float] = (0.5, 2.0)
    objective_options: dict[str, float] = field(default_factory=dict)
    backend: str = "auto"
    retain_storage: str = "exact"
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    max_length: int = 128
    lora_rank: int | None = None
    lora_alpha: float | None = None
    lora_target_modules: str | tuple[str, ...] = "all-linear"
    eval_every: int | None = None
    keep_best: str | None = None
    checkpoint_every: int | None = None
    max_steps: int | None = None

    def validate(self) -> None:
        """Raise :class:`fastngd.errors.UsageError` (a ``ValueError``) on an unusable
        setting: unknown method, non-positive sizes or rates, a bad ``keep_best``,
        ``optimizer_options`` that clash with the settings above."""
        try:
            get_method(self.method)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        for name in ("epochs", "batch_size", "autolr_every", "max_length"):
            _positive_int(name, getattr(self, name))
        _positive_int("retain_repair_steps", self.retain_repair_steps)
        _non_negative_int("retain_repair_rounds", self.retain_repair_rounds)
        for name in ("retain_batch_size", "lora_rank", "eval_every", "checkpoint_every",
                     "max_steps", "retain_check"):
            _positive_int(name, getattr(self, name), optional=True)
        _finite("lr", self.lr)
        from fastngd.unlearn.forget_target import check_forget_target

        check_forget_target(self.forget_target)
        for name in ("stop_rise", "stop_example_rise", "stop_gap"):
            if getattr(self, name) is not None:
                _finite(name, getattr(self, name))
        if self.stop_example_rise is not None and self.bounded_target:
            raise UsageError("stop_example_rise applies to the 'ascent' forget target (and to "
                             "NPO/SimNPO); with forget_target='refuse' the run stops by "
                             "stop_gap")
        q = self.stop_quantile
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 <= q < 1.0:
            raise UsageError(f"stop_quantile must be a number in [0, 1), got {q!r}")
        _non_negative_int("stop_min_steps", self.stop_min_steps)
        _finite("autolr_scale", self.autolr_scale, 0.0, 2.0)
        from fastngd.step_sizes import STEP_SIZES

        if self.step_size not in STEP_SIZES:
            raise UsageError(f"step_size must be one of {', '.join(STEP_SIZES)}, "
                             f"got {self.step_size!r}")
        if self.lora_alpha is not None:
            _finite("lora_alpha", self.lora_alpha)
        if self.keep_best is not None:
            parse_keep_best(self.keep_best)
        clash = sorted(_OPTIMIZER_RESERVED & set(self.optimizer_options))
        if clash:
            raise UsageError(
                f"optimizer_options {clash} are UnlearnConfig settings: set them there"
            )
        if self.backend not in _BACKENDS:
            raise UsageError(
                f"backend must be one of {', '.join(_BACKENDS)} (--backend), got {self.backend!r}"
            )
        check_base_options(self.optimizer_options)

    def replace(self, **changes: Any) -> UnlearnConfig:
        """A copy with ``changes`` applied (unknown names raise UsageError listing the
        valid ones)."""
        valid = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise UsageError(f"unknown unlearning setting(s) {unknown}; valid: {sorted(valid)}")
        if "autolr_clip" in changes:
            lo, hi = changes["autolr_clip"]
            changes["autolr_clip"] = (float(lo), float(hi))
        for key in ("objective_options", "optimizer_options"):
            if key in changes:
                changes[key] = dict(changes[key])
        return replace(self, **changes)

    @classmethod
    def for_base(cls, base: str, **changes: Any) -> UnlearnConfig:
        """The defaults for the base update ``base`` (a key of :data:`BASE_LR`): its rate
        and ``optimizer_options={"base": base}``, then ``changes``."""
        if base not in BASE_LR:
            raise UsageError(f"no default rate for base {base!r}; known: {sorted(BASE_LR)} "
                             "(set lr and optimizer_options={'base': ...} yourself)")
        options = {"base": base, **dict(changes.pop("optimizer_options", {}))}
        return cls().replace(**{"lr": BASE_LR[base], **changes, "optimizer_options": options})

    @property
    def base(self) -> str:
        """The base optimizer under the direction (``optimizer_options["base"]``, default
        ``"sgd"``)."""
        return str(self.optimizer_options.get("base", "sgd"))

    @property
    def bounded_target(self) -> bool:
        """Whether the run's forget target is the bounded ``"refuse"`` one (a cross-entropy
        method with ``forget_target="refuse"``)."""
        return self.forget_target == "refuse" and get_method(self.method).objective == "ce"

    @property
    def effective_retain_batch_size(self) -> int:
        """Retain examples per step (``retain_batch_size``, or ``batch_size`` when None)."""
        return self.retain_batch_size or self.batch_size

    def record(self) -> dict[str, Any]:
        """The settings as a JSON-friendly dict (tuples become lists)."""
        out = asdict(self)
        out["autolr_clip"] = list(self.autolr_clip)
        if isinstance(self.lora_target_modules, tuple):
            out["lora_target_modules"] = list(self.lora_target_modules)
        return out

    def shared_options(self) -> dict[str, Any]:
        """The settings that are not set per run by experiments (everything but method,
        autolr, lr and seed), as in the ``unlearn_options`` of results files."""
        out = self.record()
        for key in ("method", "autolr", "lr", "seed"):
            out.pop(key)
        return out


def optimizer_kwargs(config: UnlearnConfig) -> dict[str, Any]:
    """Keyword arguments of :class:`fastngd.NGDiffOptimizer` (all but the parameters) for
    ``config``: its method's rule and options, the rate, the step size (``"fixed"`` without
    AutoLR) with its GeN settings, the backend settings, the seed, and
    ``optimizer_options`` passed through untouched (they override the rest)."""
    method = get_method(config.method)
    return {
        "lr": float(config.lr), "rule": method.rule, "rule_options": dict(method.rule_options),
        "autolr": bool(config.autolr),
        "step_size": config.step_size if config.autolr else "fixed",
        "autolr_every": config.autolr_every,
        "autolr_ema": config.autolr_ema, "autolr_clip": tuple(config.autolr_clip),
        "autolr_scale": config.autolr_scale, "backend": config.backend,
        "retain_storage": config.retain_storage, "seed": config.seed,
        **dict(config.optimizer_options),
    }

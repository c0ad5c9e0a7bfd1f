"""``UnlearnConfig``: every setting of an unlearning run and its default, in one place.

The Python API (:func:`fastngd.unlearn.unlearn`), the command line (``fastngd unlearn``,
``fastngd reproduce``, ``fastngd demo``) and :class:`fastngd.integrations.NGDiffTrainer`
read their defaults from this dataclass; nothing else restates them.

The defaults were tuned on the embedded ``tofu-synthetic`` model (forget10): NGDiff with GeN
AutoLR (κ = 1.8, refit every 2 steps) from an initial rate of 0.05, forget batches of 8
paired with retain batches of 32, 30 epochs (150 steps). Methods without AutoLR start from
the same rate (fixed then); the update directions have very different scales (NGDiff's is a
difference of unit vectors, GDiff's scales with the raw gradient norms), which is exactly
the sensitivity AutoLR removes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from fastngd.errors import UsageError
from fastngd.unlearn.methods import get_method
from fastngd.unlearn.selection import parse_keep_best

__all__ = [
    "BASE_FLAGS", "RUN_CONTROL_FIELDS", "UnlearnConfig", "base_options", "check_base_options",
    "optimizer_kwargs",
]

RUN_CONTROL_FIELDS: frozenset[str] = frozenset(
    {"max_steps", "checkpoint_every", "eval_every"}
)
"""Settings that steer a run without changing its result (where it stops, how often it
checkpoints or evaluates): they may differ when a run is resumed."""

_BACKENDS = ("auto", "torch", "triton")

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
    for key, value in (("momentum", momentum), ("betas", betas), ("eps", eps),
                       ("weight_decay", weight_decay)):
        if value is not None:
            options[key] = tuple(float(v) for v in value) if key == "betas" else float(value)
    check_base_options(options)
    return options


def _positive_int(name: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")


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
        autolr: fit the learning rate with GeN (``lr`` is then the initial rate).
        epochs: passes over the forget set.
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
    epochs: int = 30
    batch_size: int = 8
    retain_batch_size: int | None = 32
    lr: float = 0.05
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
        for name in ("retain_batch_size", "lora_rank", "eval_every", "checkpoint_every",
                     "max_steps"):
            _positive_int(name, getattr(self, name), optional=True)
        _finite("lr", self.lr)
        _finite("autolr_scale", self.autolr_scale, 0.0, 2.0)
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

    @property
    def base(self) -> str:
        """The base optimizer under the direction (``optimizer_options["base"]``, default
        ``"sgd"``)."""
        return str(self.optimizer_options.get("base", "sgd"))

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
    ``config``: its method's rule and options, the rate, GeN and backend settings, the seed,
    and ``optimizer_options`` passed through untouched."""
    method = get_method(config.method)
    return {
        "lr": float(config.lr), "rule": method.rule, "rule_options": dict(method.rule_options),
        "autolr": bool(config.autolr), "autolr_every": config.autolr_every,
        "autolr_ema": config.autolr_ema, "autolr_clip": tuple(config.autolr_clip),
        "autolr_scale": config.autolr_scale, "backend": config.backend,
        "retain_storage": config.retain_storage, "seed": config.seed,
        **dict(config.optimizer_options),
    }

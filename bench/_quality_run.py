"""One run of the quality experiments: unlearn a copy of a target, evaluate, record.

A :class:`Run` is a data set, a method, a step size, a base, an initial rate, a seed and
further :class:`fastngd.unlearn.UnlearnConfig` settings; its record (settings, metrics before
and after, steps, wall times, the per-step history) is written as JSON to
``ROOT/runs/<data set>/<label>-<key>.json`` where ``key`` hashes the settings, so a sweep
that is interrupted resumes where it stopped.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _quality_targets import Target, load_target

HISTORY_KEYS = ("loss_retain", "loss_forget", "lr")
RECORD_FORMAT = 6
"""Part of every run's key, raised when the code behind the defaults changes so that older
records are not reused (the keys of earlier releases had no format: the ascent target).
2 was a first form of the ``"refuse"`` target (a second forward for the empty answers, QA
data only); 3: the empty continuation from the same forward, raw text included; 4: the gap
rule per example (every forget example within the gap, not only their mean); 5: the refuse
target leaves the EOS labels alone (counted at the cap), and muse-synthetic's unlearning sets
hold the knowmem QA pairs its target was trained on; 6: the retain check before a run stops
(``UnlearnConfig.retain_check``: retain examples the target reproduced and the run broke are
repaired)."""

DATA_VERSION: dict[str, int] = {"muse-synthetic": 2, "tofu-synthetic/forget01": 2,
                                "people/forget01": 2, "chronicles": 2}
"""Part of the key of a data set's runs, raised when that data set's runs change while the
others' do not (its material: its target, its unlearning sets; or code that only its runs
reach), so that only its records are redone. muse-synthetic 2: its target and unlearning
sets also hold the knowmem pairs asked in MUSE's few-shot layout
(:mod:`fastngd.data.few_shot`). The forget01 splits and chronicles 2: a repair round of the
retain check under way at the epoch limit runs to its end (the runs of these sets were the
only ones of ``results`` to reach their limit in a round or with the rule firing at its last
step and examples broken)."""

BASE_VERSION: dict[str, int] = {"adam": 2, "adamw": 2, "momentum": 2}
"""Part of the key of a base's runs, raised when the code behind the runs of the bases with
momentum changes while that of the SGD base does not, so that only their records are redone.
2: each repair round of the retain check starts from a cleared momentum
(:meth:`fastngd.NGDiffOptimizer.reset_momentum`, a no-op for SGD)."""


@dataclass(frozen=True)
class Run:
    """One unlearning run.

    Attributes:
        dataset: a data set of :mod:`_quality_targets` (``"people/forget10"``...).
        method: a method of :func:`fastngd.unlearn.get_method`.
        step: the step size: ``"fixed"``, ``"gen"``, ``"gen-guard"``.
        lr: the (initial) learning rate.
        seed: data, target and unlearning seed.
        base: the optimizer's base update (``"sgd"``, ``"adam"``...).
        options: further ``UnlearnConfig`` settings (``epochs``, ``autolr_scale``...);
            ``guard``: options of :class:`fastngd.step_sizes.GuardConfig`; ``stop``: options of
            :class:`fastngd.unlearn.stopping.ForgetLossStop`.
    """

    dataset: str
    method: str
    step: str
    lr: float
    seed: int = 0
    base: str = "sgd"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        version = {"data": DATA_VERSION[self.dataset]} if self.dataset in DATA_VERSION else {}
        if self.base in BASE_VERSION:
            version["base_version"] = BASE_VERSION[self.base]
        blob = json.dumps({**asdict(self), "format": RECORD_FORMAT, **version},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    @property
    def label(self) -> str:
        return f"{self.method}-{self.step}-{self.base}-lr{self.lr:g}-s{self.seed}"

    def path(self, root: Path) -> Path:
        return root / "runs" / self.dataset.replace("/", "_") / f"{self.label}-{self.key}.json"


class Targets:
    """Targets loaded once per process, with their metrics before unlearning (cached on
    disk next to the runs)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[tuple[str, int], Target] = {}

    def get(self, dataset: str, seed: int) -> Target:
        if (dataset, seed) not in self._cache:
            self._cache.clear()  # one target at a time keeps the memory small
            self._cache[(dataset, seed)] = load_target(dataset, seed, self.root)
        return self._cache[(dataset, seed)]

    def before(self, dataset: str, seed: int) -> dict[str, Any]:
        path = self.root / "targets" / f"{dataset.replace('/', '_')}-s{seed}.json"
        if path.exists():
            return json.loads(path.read_text())
        target = self.get(dataset, seed)
        t0 = time.perf_counter()
        metrics = target.evaluate(target.model)
        record = {"metrics": metrics, "source": target.source,
                  "eval_seconds": time.perf_counter() - t0}
        _write(path, record)
        return record

    def retrain(self, dataset: str, seed: int, build: bool = True) -> dict[str, Any] | None:
        """The metrics record of ``dataset``'s retrain reference for ``seed``
        (:func:`_quality_targets.retrain_model`; cached next to the targets), or None: no
        reference, or not built yet and ``build`` is False."""
        from _quality_targets import RETRAIN_SPLITS, retrain_model, split_name

        if split_name(dataset)[0] not in RETRAIN_SPLITS:
            return None
        path = self.root / "targets" / f"{dataset.replace('/', '_')}-s{seed}-retrain.json"
        if path.exists():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        if not build:
            return None
        reference = retrain_model(dataset, seed, self.root)
        record = {"metrics": reference.evaluate(reference.model), "source": reference.source}
        _write(path, record)
        return record


def _write(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1, default=_plain))
    tmp.replace(path)


def _plain(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def _settings(config: Any) -> dict[str, Any]:
    """The resolved settings of a run, for its record: the config (the step-size object
    replaced by its name and its GeN and guard settings)."""
    out = config.record()
    opts = dict(out.get("optimizer_options") or {})
    step = opts.pop("step_size", None)
    if step is not None:
        out["step_size_settings"] = {"name": step.name, "gen": asdict(step.config),
                                     **({"guard": asdict(step.guard)} if hasattr(step, "guard")
                                        else {})}
    out["optimizer_options"] = opts
    return out


def _config(run: Run) -> tuple[Any, list[Any]]:
    """``(UnlearnConfig, callbacks)`` of a run."""
    from fastngd.autolr import GeNConfig
    from fastngd.step_sizes import GuardConfig, GuardedGeNStep, get_step_size
    from fastngd.unlearn import UnlearnConfig
    from fastngd.unlearn.stopping import ForgetLossStop

    options = dict(run.options)
    guard = options.pop("guard", None)
    stop = options.pop("stop", None)
    extra = dict(options.pop("optimizer_options", {}))
    config = UnlearnConfig(method=run.method, autolr=run.step != "fixed", lr=run.lr,
                           seed=run.seed).replace(**options)
    if run.step != "fixed":
        gen = GeNConfig(every=config.autolr_every, ema=config.autolr_ema,
                        clip=tuple(config.autolr_clip), scale=config.autolr_scale)
        step = (GuardedGeNStep(gen, GuardConfig(**guard)) if guard is not None
                else get_step_size(run.step, gen))
        extra["step_size"] = step
    config = config.replace(optimizer_options={**extra, "base": run.base})
    callbacks = [ForgetLossStop(**stop)] if stop else []
    return config, callbacks


def example_rises(history: list[dict[str, Any]]) -> list[float]:
    """Each forget example's rise ``r_i`` (latest − first token-mean loss seen) at the end of
    a run, as :class:`fastngd.unlearn.ExampleLossStop` computes it."""
    from fastngd.unlearn import ExampleLossStop

    rule = ExampleLossStop(rise=1.0)
    for entry in history:
        if "forget_losses" in entry:
            rule.observe(entry)
    return rule.rises()


def execute(run: Run, targets: Targets) -> dict[str, Any]:
    """Run ``run`` (or read its cached record); returns the record."""
    from fastngd.unlearn import UnlearningDiverged, unlearn

    path = run.path(targets.root)
    if path.exists():
        return json.loads(path.read_text())
    before = targets.before(run.dataset, run.seed)
    target = targets.get(run.dataset, run.seed)
    config, callbacks = _config(run)
    model = copy.deepcopy(target.model)
    record: dict[str, Any] = {"run": asdict(run), "settings": _settings(config),
                              "before": before["metrics"], "source": target.source}
    t0 = time.perf_counter()
    try:
        result = unlearn(model, target.forget, target.retain, config, callbacks=callbacks)
    except UnlearningDiverged as exc:
        record.update(diverged=True, message=str(exc), steps=exc.step,
                      unlearn_seconds=time.perf_counter() - t0, metrics=None)
        _write(path, record)
        return record
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    metrics = target.evaluate(model)
    history = {k: [h[k] for h in result.history] for k in HISTORY_KEYS}
    record.update(diverged=False, metrics=metrics, steps=result.steps,
                  completed=result.completed, unlearn_seconds=seconds,
                  eval_seconds=time.perf_counter() - t1, history=history,
                  final_lr=result.final_lr, forget_rises=example_rises(result.history),
                  retain_check=result.retain_check)
    _write(path, record)
    return record


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)

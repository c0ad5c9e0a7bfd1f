"""Class unlearning on scikit-learn's handwritten digits (ships offline, 1,797 8×8 images).

The experiment of the NGDiff paper's appendix on a small classifier: train an MLP on all ten
classes, then make it forget one class (the forget set is every training image of that
class, the retain set every other training image) with each method, and report the
accuracy on the forget class and on the other classes, for the training split and a held-out
test split. The target is forget accuracy ≈ 0 with retain accuracy ≥ 0.97× its value before
unlearning.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fastngd.unlearn import UnlearnConfig, UnlearningDiverged, get_method, unlearn

__all__ = [
    "DIGITS_METHODS",
    "DigitsData",
    "accuracy",
    "load_digits_data",
    "run_digits",
    "train_classifier",
]

DIGITS_METHODS: tuple[str, ...] = (
    "ngdiff", "gdiff-0.5", "gdiff-0.9", "ga", "gd", "lossnorm", "npo", "simnpo", "rlw",
    "pcgrad", "imtlg", "mgda", "sago",
)
"""Methods run by :func:`run_digits` by default."""


@dataclass
class DigitsData:
    """Standardised digit images (``x``: ``[N, 64]`` float32) and labels, split in two."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def load_digits_data(seed: int = 0, test_fraction: float = 0.25,
                     limit: int | None = None) -> DigitsData:
    """Load the digits, shuffle with ``seed``, keep the first ``limit`` images (all when
    None), split off ``test_fraction`` for testing and scale pixels to [0, 1] (÷16)."""
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    if limit is not None:
        if limit < 20:
            raise ValueError(f"limit must be at least 20 images, got {limit}")
        order = order[:limit]
    x, y = x[order], y[order]
    n_test = max(1, round(test_fraction * len(y)))
    return DigitsData(x[n_test:], y[n_test:], x[:n_test], y[:n_test])


def make_mlp(seed: int = 0, hidden: int = 64) -> nn.Module:
    """A 64 → hidden → hidden → 10 tanh MLP, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                             nn.Tanh(), nn.Linear(hidden, 10))


def train_classifier(data: DigitsData, *, seed: int = 0, epochs: int = 60, lr: float = 3e-3,
                     batch_size: int = 64) -> nn.Module:
    """Train :func:`make_mlp` with Adam on the training split (cross-entropy)."""
    model = make_mlp(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
    model.eval()
    return model


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of ``x`` classified as ``y`` (NaN on an empty set)."""
    if len(y) == 0:
        return float("nan")
    return (model(x).argmax(-1) == y).float().mean().item()


def _scores(model: nn.Module, data: DigitsData, forget_class: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        f = y == forget_class
        out[f"{split}_forget_accuracy"] = accuracy(model, x[f], y[f])
        out[f"{split}_retain_accuracy"] = accuracy(model, x[~f], y[~f])
    return out


def run_digits(
    methods: Sequence[str] = DIGITS_METHODS,
    *,
    seed: int = 0,
    forget_class: int = 0,
    autolr: bool = True,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 0.05,
    method_lr: Mapping[str, float] | None = None,
    limit: int | None = None,
    train_epochs: int = 60,
    optimizer_options: Mapping[str, Any] | None = None,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train a digits classifier, then forget ``forget_class`` with every method.

    Each method starts from the same trained model and runs ``epochs`` passes over the
    forget images (``batch_size`` per step, each with a random retain batch) with
    ``autolr`` and the initial rate ``lr`` (``method_lr`` overrides it per method);
    ``optimizer_options`` (e.g. ``{"base": "adamw"}``) go to every run's
    :class:`fastngd.unlearn.UnlearnConfig`.
    Returns ``{"original": scores, "methods": {name: scores + run info}, "seed",
    "forget_class"}`` with scores ``{train,test}_{forget,retain}_accuracy``.
    """
    if not 0 <= forget_class <= 9:
        raise ValueError(f"forget_class must be a digit 0-9, got {forget_class}")
    for name in methods:
        get_method(name)
    data = load_digits_data(seed, limit=limit)
    model = train_classifier(data, seed=seed, epochs=train_epochs)
    original = _scores(model, data, forget_class)
    f = data.y_train == forget_class
    forget = list(zip(data.x_train[f], data.y_train[f]))
    retain = list(zip(data.x_train[~f], data.y_train[~f]))
    if not forget:
        raise ValueError(f"no training image of class {forget_class} (limit={limit} too small?)")
    log(f"digits: trained MLP, forget class {forget_class}: train forget acc "
        f"{original['train_forget_accuracy']:.3f}, retain acc {original['train_retain_accuracy']:.3f}")
    config = UnlearnConfig(autolr=autolr, epochs=epochs, batch_size=batch_size,
                           retain_batch_size=batch_size, seed=seed,
                           optimizer_options=dict(optimizer_options or {}))
    config.validate()
    results: dict[str, Any] = {}
    for name in methods:
        worker = copy.deepcopy(model)
        run_lr = (method_lr or {}).get(name, lr)
        t0 = time.perf_counter()
        try:
            res = unlearn(worker, forget, retain, config.replace(method=name, lr=run_lr),
                          progress=progress)
        except UnlearningDiverged as exc:
            results[name] = {"diverged": True, "message": str(exc), "lr": run_lr,
                             "base": config.base}
            log(f"  {name:<10} diverged")
            continue
        scores = _scores(worker, data, forget_class)
        scores.update(diverged=False, lr=run_lr, autolr=autolr, base=config.base, steps=res.steps,
                      final_lr=res.final_lr, seconds=time.perf_counter() - t0)
        results[name] = scores
        log(f"  {name:<10} forget acc {scores['train_forget_accuracy']:.3f} "
            f"retain acc {scores['train_retain_accuracy']:.3f} "
            f"(test {scores['test_forget_accuracy']:.3f} / {scores['test_retain_accuracy']:.3f})")
    return {"original": original, "methods": results, "seed": seed, "forget_class": forget_class,
            "base": config.base}

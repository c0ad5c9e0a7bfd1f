"""The base update over buckets: the hyper table each backend call gets, and step counting."""
from __future__ import annotations

import math

import torch

from fastngd.backends import TorchBackend
from fastngd.bases import get_base
from fastngd.update import TINY_LR, UpdatePass, gather_buckets


def _pass(lrs, base="adam", ok=True, steps=0.0):
    params = [torch.nn.Parameter(torch.ones(3)) for _ in lrs]
    groups = [{"params": [p], "lr": lr, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0.1,
               "momentum": 0.9} for p, lr in zip(params, lrs)]
    class State(dict):
        def __missing__(self, key):
            self[key] = {}
            return self[key]

    state = State()
    b = get_base(base)
    for p in params:
        p.grad = torch.ones(3)
    buckets = list(gather_buckets(groups, state, b, "retain_grad").values())
    for bucket in buckets:
        for s in bucket.steps:
            s.fill_(steps)
        bucket.weights = torch.ones(len(bucket), 2, dtype=torch.float64)
    run = UpdatePass(b, buckets, lambda d: TorchBackend(), "linear", torch.tensor(ok))
    return run, state, params


def test_hyper_rows() -> None:
    run, _, _ = _pass([0.1, 0.0, float("nan")], steps=4.0)
    h = run._hyper(0, torch.tensor(2.0, dtype=torch.float64))
    assert h[0, 0].item() == 0.2 and h[1, 0].item() == TINY_LR  # lr 0: a zero step, state moves
    assert math.isnan(h[2, 0].item())  # (a NaN lr is caught by the skip flags before this)
    assert h[0, 1:5].tolist() == [0.1, 0.9, 0.99, 1e-8]
    assert h[0, 5].item() == 1 - 0.9**5 and h[0, 6].item() == 1 - 0.99**5  # t = 4 + 1


def test_a_skipped_step_gets_zero_rates_whatever_the_group_lr() -> None:
    run, _, _ = _pass([0.1, float("nan"), float("inf")], ok=False)
    assert run._hyper(0, torch.tensor(1.0, dtype=torch.float64))[:, 0].tolist() == [0.0] * 3


def test_steps_count_applied_steps_only() -> None:
    run, state, params = _pass([0.1, 0.1])
    run.finish()  # nothing advanced yet
    assert all(state[p]["step"].item() == 0.0 for p in params)
    run.step(torch.tensor(1.0, dtype=torch.float64))
    run.finish()
    assert all(state[p]["step"].item() == 1.0 for p in params)
    run, state, params = _pass([0.1], ok=False)
    run.step(torch.tensor(1.0, dtype=torch.float64))
    run.finish()
    assert state[params[0]]["step"].item() == 0.0


def test_sgd_and_momentum_have_no_bias_corrections() -> None:
    run, _, _ = _pass([0.1], base="momentum")
    h = run._hyper(0, torch.tensor(1.0, dtype=torch.float64))
    assert h[0, 2].item() == 0.9 and h[0, 5:].tolist() == [1.0, 1.0]

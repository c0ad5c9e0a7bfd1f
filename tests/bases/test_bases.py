"""Every base update against torch's own optimizer fed the float64 reference direction d.

The optimizer gets random retain and forget gradients through the low-level API; torch's
optimizer, on a copy of the parameters, gets ``.grad = d`` with ``d`` the float64 NGDiff
direction (``fastngd.reference``). Over 8 steps, with two parameter groups of different
hyper-parameters, the parameters must agree: to float64 rounding for float64 parameters, to
float32 rounding for float32 ones.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastngd import BASES, NGDiffOptimizer
from fastngd.bases import get_base
from fastngd.reference import reference_direction, reference_weights

SHAPES = [(5, 3), (7,), (1,), (300,)]
TORCH = {
    "sgd": lambda groups: torch.optim.SGD(groups, lr=0.1),
    "momentum": lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9),
    "adam": lambda groups: torch.optim.Adam(groups, lr=0.1, foreach=False),
    "adamw": lambda groups: torch.optim.AdamW(groups, lr=0.1, foreach=False),
}
GROUP_HYPER = {
    "sgd": [{"weight_decay": 0.0}, {"weight_decay": 0.05}],
    "momentum": [{"momentum": 0.5, "weight_decay": 0.01}, {"momentum": 0.9, "weight_decay": 0.0}],
    "adam": [{"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01},
             {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}],
    "adamw": [{"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
              {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}],
}


def _d(g_r, g_f):
    rr = sum(float((g.double() ** 2).sum()) for g in g_r)
    ff = sum(float((g.double() ** 2).sum()) for g in g_f)
    rf = sum(float((a.double() * b.double()).sum()) for a, b in zip(g_r, g_f))
    w_r, w_f = reference_weights("ngdiff", rr, ff, rf)
    return reference_direction(g_r, g_f, "ngdiff", w_r, w_f)


TORCH_MOMENTUM = {"sgd": (), "momentum": ("momentum_buffer",), "adam": ("exp_avg",),
                  "adamw": ("exp_avg",)}
"""torch's names of the buffers that ``reset_momentum`` clears."""


def _run(base: str, dtype: torch.dtype, steps: int = 8, reset_at: tuple[int, ...] = ()):
    g = torch.Generator().manual_seed(0)
    theta = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in SHAPES]
    ours = [torch.nn.Parameter(t.clone()) for t in theta]
    theirs = [torch.nn.Parameter(t.clone()) for t in theta]
    hyper = GROUP_HYPER[base]
    opt = NGDiffOptimizer([{"params": ours[:2], "lr": 0.05, **hyper[0]},
                           {"params": ours[2:], "lr": 0.1, **hyper[1]}],
                          rule="ngdiff", base=base, autolr=False, backend="torch")
    ref = TORCH[base]([{"params": theirs[:2], "lr": 0.05, **hyper[0]},
                       {"params": theirs[2:], "lr": 0.1, **hyper[1]}])
    worst = 0.0
    for k in range(steps):
        if k in reset_at:  # ours cleared by the API, torch's by hand
            opt.reset_momentum()
            for p in theirs:
                for name in TORCH_MOMENTUM[base]:
                    ref.state[p][name].zero_()
        g_r = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in SHAPES]
        g_f = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in SHAPES]
        for p, x in zip(ours, g_r):
            p.grad = x.clone()
        opt.stash_retain_grad()
        for p, x in zip(ours, g_f):
            p.grad = x.clone()
        opt.step()
        for p, d in zip(theirs, _d(g_r, g_f)):
            p.grad = d.to(dtype)  # torch's optimizer fed the float64 direction
        ref.step()
        for a, b in zip(ours, theirs):
            worst = max(worst, float((a.detach().double() - b.detach().double()).abs().max()))
    moved = max(float((a.detach().double() - t.double()).abs().max()) for a, t in zip(ours, theta))
    return worst, moved, opt


@pytest.mark.parametrize("base", BASES)
def test_float64_matches_torch(base: str) -> None:
    worst, moved, _ = _run(base, torch.float64)
    assert moved > 0.05, "the parameters did not move: the comparison would be vacuous"
    assert worst <= 1e-12


@pytest.mark.parametrize("base", BASES)
def test_float32_matches_torch(base: str) -> None:
    worst, moved, _ = _run(base, torch.float32)
    assert moved > 0.05
    assert worst <= 2e-5


@pytest.mark.parametrize("base", BASES)
def test_reset_momentum_matches_torch_with_its_buffer_cleared(base: str) -> None:
    """``reset_momentum`` between steps is torch's optimizer with ``momentum_buffer`` /
    ``exp_avg`` set to zero there (``exp_avg_sq`` and ``step`` kept)."""
    worst, moved, _ = _run(base, torch.float64, reset_at=(3, 6))
    assert moved > 0.05
    assert worst <= 1e-12


@pytest.mark.parametrize("base", ["momentum", "adam"])
def test_reset_momentum_changes_the_next_steps(base: str) -> None:
    """The reset is not a no-op for a base with momentum: without it the same gradients give
    other parameters (so the comparison above has teeth)."""
    _, _, plain = _run(base, torch.float64)
    _, _, reset = _run(base, torch.float64, reset_at=(3,))
    a = [p for g in plain.param_groups for p in g["params"]]
    b = [p for g in reset.param_groups for p in g["params"]]
    assert max(float((x.detach() - y.detach()).abs().max()) for x, y in zip(a, b)) > 1e-3


@settings(max_examples=25, deadline=None)
@given(base=st.sampled_from(BASES), steps=st.integers(0, 3),
       dtype=st.sampled_from([torch.float32, torch.bfloat16]))
def test_reset_momentum_clears_exactly_the_momentum_buffers(base, steps, dtype) -> None:
    """After ``reset_momentum`` every buffer of ``momentum_names`` is zero, every other
    state entry (second moment, step count) is unchanged, and the parameters are untouched."""
    g = torch.Generator().manual_seed(steps)
    params = [torch.nn.Parameter(torch.randn(s, generator=g).to(dtype)) for s in SHAPES]
    opt = NGDiffOptimizer(params, lr=0.01, base=base, autolr=False, backend="torch")
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g).to(dtype)
        opt.stash_retain_grad()
        for p in params:
            p.grad = torch.randn(p.shape, generator=g).to(dtype)
        opt.step()
    before = {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in params}
    theta = [p.detach().clone() for p in params]
    opt.reset_momentum()
    names = get_base(base).momentum_names
    assert set(names) <= set(get_base(base).state_names)
    for p, t in zip(params, theta):
        assert torch.equal(p.detach(), t)
        assert set(opt.state[p]) == set(before[id(p)])
        for key, value in opt.state[p].items():
            if key in names:
                assert not bool(value.any())
            else:
                assert torch.equal(value, before[id(p)][key])


def test_a_wrong_base_is_seen() -> None:
    """The comparison has teeth: Adam's moments fed to AdamW's decay differ."""
    w_adam, _, _ = _run("adam", torch.float64)
    assert w_adam <= 1e-12
    saved = TORCH["adam"]
    try:
        TORCH["adam"] = lambda groups: torch.optim.AdamW(groups, lr=0.1, foreach=False)
        worst, _, _ = _run("adam", torch.float64)
    finally:
        TORCH["adam"] = saved
    assert worst > 1e-6


@pytest.mark.parametrize("base", ["momentum", "adam", "adamw"])
def test_state_is_torchs_and_float32_for_bf16(base: str) -> None:
    p = torch.nn.Parameter(torch.randn(10, dtype=torch.bfloat16))
    opt = NGDiffOptimizer([p], lr=0.01, base=base, autolr=False, backend="torch")
    p.grad = torch.randn(10, dtype=torch.bfloat16)
    opt.stash_retain_grad()
    p.grad = torch.randn(10, dtype=torch.bfloat16)
    opt.step()
    state = opt.state[p]
    names = get_base(base).state_names
    assert set(names) <= set(state)
    for name in names:
        assert state[name].dtype == torch.float32 and state[name].shape == p.shape
        assert bool((state[name] != 0).any())
    if base != "momentum":
        assert state["step"].item() == 1.0


@pytest.mark.parametrize("kwargs,match", [
    ({"base": "adam", "betas": (1.0, 0.999)}, "betas"),
    ({"base": "adam", "betas": (0.9, -0.1)}, "betas"),
    ({"base": "adamw", "betas": (0.9,)}, "pair"),
    ({"base": "adam", "eps": -1e-8}, "eps"),
    ({"base": "adamw", "weight_decay": -0.1}, "weight_decay"),
    ({"base": "sgd", "weight_decay": float("nan")}, "weight_decay"),
    ({"base": "momentum", "momentum": 1.5}, "momentum"),
    ({"base": "adam", "momentum": 0.9}, "momentum= applies to base 'momentum'"),
    ({"base": "sgd", "betas": (0.9, 0.99)}, "betas= applies"),
    ({"base": "momentum", "eps": 1e-8}, "eps= applies"),
    ({"base": "lion"}, "valid bases"),
])
def test_bad_hyper_parameters_are_refused_at_construction(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        NGDiffOptimizer([torch.nn.Parameter(torch.ones(2))], **kwargs)


def test_bad_group_hyper_parameters_are_refused() -> None:
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="betas"):
        NGDiffOptimizer([{"params": [a]}, {"params": [b], "betas": (0.9, 1.0)}], base="adam")
    opt = NGDiffOptimizer([a], base="adamw")
    with pytest.raises(ValueError, match="eps"):
        opt.add_param_group({"params": [b], "eps": -1.0})
    assert len(opt.param_groups) == 1  # the refused group was not kept


def test_defaults_are_torchs() -> None:
    assert get_base("adamw").defaults == {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
    assert get_base("adam").defaults["weight_decay"] == 0.0
    opt = NGDiffOptimizer([torch.nn.Parameter(torch.ones(2))], base="momentum", momentum=0.5)
    assert opt.param_groups[0]["momentum"] == 0.5 and opt.param_groups[0]["weight_decay"] == 0.0
    assert not math.isnan(opt.param_groups[0]["lr"])

"""Lemma 4 and the per-rule guarantee table (DESIGN §1), through the optimizer's real path.

Gradients are fed through the low-level API (``stash_retain_grad`` then ``step_from_grads``)
with parameters at zero and ``lr = 1``, so the parameters after the step are exactly ``−d``
as the optimizer applied it (weights, rounding and all).
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from fastngd import NGDiffOptimizer

EPS = {torch.float32: 2.0**-23, torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}
SHAPES = [(0,), (1,), (3,), (2, 3), (5, 1), (4, 4), (7,), (0, 3), (2, 2, 2)]


def applied_direction(rule, g_r, g_f, **kw):
    """``d`` the optimizer applies for gradients ``g_r``, ``g_f`` (lists), and its stats."""
    params = [torch.zeros_like(g, requires_grad=True) for g in g_r]
    opt = NGDiffOptimizer(params, lr=1.0, rule=rule, autolr=False, backend="torch", **kw)
    for p, g in zip(params, g_r):
        p.grad = g.clone()
    opt.stash_retain_grad(torch.tensor(1.0))
    for p, g in zip(params, g_f):
        p.grad = g.clone()
    stats = opt.step_from_grads(loss_forget=torch.tensor(2.0))
    return [-p.detach().double() for p in params], stats


def dot(a, b):
    return sum(float((x.double() * y.double()).sum()) for x, y in zip(a, b))


@st.composite
def gradient_pairs(draw):
    dtype = draw(st.sampled_from([torch.float32, torch.bfloat16, torch.float16]))
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=4))
    seed = draw(st.integers(0, 2**31 - 1))
    span = 3 if dtype == torch.float16 else 10
    s_r = 10.0 ** draw(st.integers(-span, span))
    s_f = 10.0 ** draw(st.integers(-span, span))
    relation = draw(st.sampled_from(["independent", "parallel", "antiparallel", "equal"]))
    g = torch.Generator().manual_seed(seed)
    base_r = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    noise = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    if relation == "independent":
        base_f = noise
    elif relation == "equal":
        base_f = base_r
    else:
        sign = 1.0 if relation == "parallel" else -1.0
        base_f = [sign * r + 1e-3 * n for r, n in zip(base_r, noise)]
    g_r = [(s_r * r).to(dtype) for r in base_r]
    g_f = [(s_f * f).to(dtype) for f in base_f]
    return dtype, g_r, g_f


def _tolerances(dtype, g_r, g_f, stats, rule):
    """Rounding bounds: each product and the difference rounded in the storage dtype, and the
    weights' own float32 error (relative, except MGDA's ``1 − γ``, which is absolute)."""
    nr, nf = math.sqrt(dot(g_r, g_r)), math.sqrt(dot(g_f, g_f))
    w_r, w_f = abs(stats.weight_retain.item()), abs(stats.weight_forget.item())
    k = 8 * (EPS[dtype] + EPS[torch.float32])
    tol_r, tol_f = k * nr * (w_r * nr + w_f * nf), k * nf * (w_r * nr + w_f * nf)
    if rule == "mgda":
        tol_r += 8 * EPS[torch.float32] * nr * (nr + nf)
        tol_f += 8 * EPS[torch.float32] * nf * (nr + nf)
    return tol_r, tol_f


@pytest.mark.parametrize("rule", ["ngdiff", "imtlg", "pcgrad", "mgda"])
@given(data=gradient_pairs())
def test_two_sided_lemma4(rule, data) -> None:
    dtype, g_r, g_f = data
    d, stats = applied_direction(rule, g_r, g_f)
    tol_r, tol_f = _tolerances(dtype, g_r, g_f, stats, rule)
    assert not stats.skipped.item()
    assert dot(g_r, d) >= -tol_r
    assert dot(g_f, d) <= tol_f


@pytest.mark.parametrize("rule", ["sago", "pcgrad_retain"])
@given(data=gradient_pairs())
def test_retain_side_lemma4(rule, data) -> None:
    dtype, g_r, g_f = data
    d, stats = applied_direction(rule, g_r, g_f)
    tol_r, _ = _tolerances(dtype, g_r, g_f, stats, rule)
    assert dot(g_r, d) >= -tol_r
    if rule == "sago":  # per coordinate, exactly
        for r, di in zip(g_r, d):
            assert bool((r.double() * di >= 0).all())


def test_zero_norm_gradients_never_nan() -> None:
    zero = [torch.zeros(3)]
    f = [torch.tensor([1.0, -2.0, 2.0])]
    d, stats = applied_direction("ngdiff", zero, f)
    assert torch.allclose(d[0], -f[0].double() / 3.0)
    d, stats = applied_direction("ngdiff", zero, [torch.zeros(3)])
    assert torch.equal(d[0], torch.zeros(3, dtype=torch.float64))
    assert not stats.skipped.item()


# Counterexamples: the sides of Lemma 4 a rule does *not* guarantee can fail.
R = [torch.tensor([1.0, 0.0])]
F_BIG = [torch.tensor([10.0, 10.0])]


@pytest.mark.parametrize("rule,kw", [("gdiff", {}), ("gdiff", {"rule_options": {"c": 0.3}}),
                                     ("lossnorm", {})])
def test_counterexample_retain_side(rule, kw) -> None:
    d, _ = applied_direction(rule, R, F_BIG, **kw)
    assert dot(R, d) < 0


def test_counterexample_rlw() -> None:
    found = any(dot(R, applied_direction("rlw", R, F_BIG, seed=s)[0]) < 0 for s in range(10))
    assert found


@pytest.mark.parametrize("rule", ["sago", "pcgrad_retain"])
def test_counterexample_forget_side(rule) -> None:
    r = [torch.tensor([1.0, 1.0])]
    f = [torch.tensor([1.0, -0.1])]  # coordinate 0 conflicts
    d, _ = applied_direction(rule, r, f)
    assert dot(f, d) > 0


@given(data=gradient_pairs(), a=st.floats(1e-3, 1e3), b=st.floats(1e-3, 1e3))
def test_ngdiff_per_task_scale_invariance(data, a, b) -> None:
    dtype, g_r, g_f = data
    assume(dtype == torch.float32)
    d1, _ = applied_direction("ngdiff", g_r, g_f)
    d2, _ = applied_direction("ngdiff", [a * g for g in g_r], [b * g for g in g_f])
    for x, y in zip(d1, d2):
        assert torch.allclose(x, y, rtol=1e-4, atol=1e-5)


@given(data=gradient_pairs())
def test_imtlg_is_proportional_to_ngdiff(data) -> None:
    dtype, g_r, g_f = data
    assume(dtype == torch.float32)
    nr, nf = math.sqrt(dot(g_r, g_r)), math.sqrt(dot(g_f, g_f))
    assume(nr > 0 and nf > 0)
    d_ng, _ = applied_direction("ngdiff", g_r, g_f)
    d_im, _ = applied_direction("imtlg", g_r, g_f)
    k = nr * nf / (nr + nf)
    for x, y in zip(d_ng, d_im):
        assert torch.allclose(k * x, y, rtol=1e-4, atol=1e-6 * k)

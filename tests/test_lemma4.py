"""Lemma 4 and the rule table (``fastngd.rules.RULES``), through the optimizer's real path;
scale invariance over the whole finite range.

Gradients are fed through the low-level API (``stash_retain_grad`` then ``step_from_grads``)
with parameters at zero and ``lr = 1``, so the parameters after the step are exactly ``−d``
as the optimizer applied it (weights, rounding and all). Every side of Lemma 4 that the rule
table claims is checked on random gradients; every side it does not claim has a
counterexample. Lemma 4 holds for ``d``; for the update ``u`` of a preconditioned base it
need not, which the step statistics ``g_R·u`` and ``g_F·u`` show.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from fastngd.reference import ReferenceNGDiff
from fastngd.rules import RULES

from .helpers import applied_direction

EPS = {torch.float32: 2.0**-23, torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10,
       torch.float64: 2.0**-52}
SHAPES = [(0,), (1,), (3,), (2, 3), (5, 1), (4, 4), (7,), (0, 3), (2, 2, 2)]
RETAIN_SAFE = sorted(n for n, r in RULES.items() if r.retain_safe)
FORGET_SAFE = sorted(n for n, r in RULES.items() if r.forget_safe)


def dot(a, b):
    return sum(float((x.double() * y.double()).sum()) for x, y in zip(a, b))


@st.composite
def gradient_pairs(draw, dtypes=(torch.float32, torch.bfloat16, torch.float16), span=10):
    dtype = draw(st.sampled_from(dtypes))
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=4))
    seed = draw(st.integers(0, 2**31 - 1))
    span = 3 if dtype == torch.float16 else span
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
    weights' own float32 error (relative, except MGDA's ``1 − γ``, which is absolute). For the
    constant-weight rules the terms are bounded by the weights times the norms (projections
    included), so the same bound applies with the weights of the rule's options."""
    nr, nf = math.sqrt(dot(g_r, g_r)), math.sqrt(dot(g_f, g_f))
    w_r, w_f = abs(stats.weight_retain.item()), abs(stats.weight_forget.item())
    if RULES[rule].per_tensor or rule.startswith("surgery_"):
        w_r, w_f = w_r + w_f + 1.0, w_r + w_f + 1.0
    k = 8 * (EPS[dtype] + EPS[torch.float32])
    tol_r, tol_f = k * nr * (w_r * nr + w_f * nf), k * nf * (w_r * nr + w_f * nf)
    if rule == "mgda":
        tol_r += 8 * EPS[torch.float32] * nr * (nr + nf)
        tol_f += 8 * EPS[torch.float32] * nf * (nr + nf)
    return tol_r, tol_f


def _options(rule):
    return {"seed": 3} if RULES[rule].random else {}


@pytest.mark.parametrize("rule,side", [(r, "retain") for r in RETAIN_SAFE]
                         + [(r, "forget") for r in FORGET_SAFE])
@given(data=gradient_pairs())
def test_guaranteed_sides(rule, side, data) -> None:
    """``g_R·d ≥ 0`` (retain side) or ``g_F·d ≤ 0`` (forget side), as the table says; also
    what the statistics report (``u = d`` here); per coordinate where the table says so."""
    dtype, g_r, g_f = data
    d, stats = applied_direction(rule, g_r, g_f, **_options(rule))
    tol_r, tol_f = _tolerances(dtype, g_r, g_f, stats, rule)
    assert not stats.skipped.item()
    if side == "retain":
        assert dot(g_r, d) >= -tol_r and stats.retain_dot_update.item() >= -tol_r
        if RULES[rule].per_coordinate:  # coordinate by coordinate, exactly
            for r, di in zip(g_r, d):
                assert bool((r.double() * di >= 0).all())
    else:
        assert dot(g_f, d) <= tol_f and stats.forget_dot_update.item() <= tol_f


# Counterexamples: the sides of Lemma 4 a rule does *not* guarantee fail somewhere.
_CANDIDATES = [
    ([torch.tensor([1.0, 0.0])], [torch.tensor([10.0, 10.0])]),
    ([torch.tensor([1.0, 1.0])], [torch.tensor([1.0, -0.1])]),
    ([torch.tensor([10.0, 10.0])], [torch.tensor([1.0, 0.0])]),
    ([torch.tensor([1e-6])], [torch.tensor([1.0])]),
    ([torch.tensor([1.0])], [torch.tensor([1e-6])]),
    ([torch.tensor([1.0, 0.5])], [torch.tensor([0.5, 1.0])]),
]


@pytest.mark.parametrize("rule", sorted(n for n in RULES if n not in RETAIN_SAFE))
def test_retain_side_counterexample(rule) -> None:
    found = any(dot(r, applied_direction(rule, r, f, seed=s)[0]) < 0
                for r, f in _CANDIDATES for s in range(6 if RULES[rule].random else 1))
    assert found


@pytest.mark.parametrize("rule", sorted(n for n in RULES if n not in FORGET_SAFE))
def test_forget_side_counterexample(rule) -> None:
    found = any(dot(f, applied_direction(rule, r, f, seed=s)[0]) > 0
                for r, f in _CANDIDATES for s in range(6 if RULES[rule].random else 1))
    assert found


def test_lemma4_holds_for_d_but_not_for_adams_update() -> None:
    """Adam's first step is u ≈ sign(d): g_R·d ≥ 0 (Lemma 4 for NGDiff), yet g_R·u < 0 here,
    and the step statistics say so; with sgd the same gradients give g_R·u = g_R·d ≥ 0."""
    g_r = [torch.tensor([0.5] + [-0.01] * 100, dtype=torch.float64)]
    g_f = [torch.tensor([0.0] + [-1.0] * 100, dtype=torch.float64)]
    d, sgd = applied_direction("ngdiff", g_r, g_f)
    assert dot(g_r, d) >= 0 and sgd.retain_dot_update.item() == pytest.approx(dot(g_r, d))
    _, adam = applied_direction("ngdiff", g_r, g_f, base="adam")
    assert adam.retain_dot_update.item() < 0


def test_zero_norm_gradients_never_nan() -> None:
    zero = [torch.zeros(3)]
    f = [torch.tensor([1.0, -2.0, 2.0])]
    d, stats = applied_direction("ngdiff", zero, f)
    assert torch.allclose(d[0], -f[0].double() / 3.0)
    d, stats = applied_direction("ngdiff", zero, [torch.zeros(3)])
    assert torch.equal(d[0], torch.zeros(3, dtype=torch.float64))
    assert not stats.skipped.item()


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


SCALE_RULES = ["ngdiff", "sago", "pcgrad_retain", "imtlg", "mgda", "pcgrad"]


@pytest.mark.parametrize("rule", SCALE_RULES)
@given(data=gradient_pairs(dtypes=(torch.float32, torch.bfloat16, torch.float64), span=30))
def test_the_step_is_right_at_every_scale(rule, data) -> None:
    """Gradients of any scale 1e-30…1e30 per task (fp32, bf16, fp64): the step is neither
    skipped nor zero, equals the float64 reference's, and every statistic is finite."""
    dtype, g_r, g_f = data
    d, stats = applied_direction(rule, g_r, g_f)
    ref = ReferenceNGDiff([torch.zeros_like(g, dtype=torch.float64) for g in g_r], lr=1.0,
                          rule=rule)
    expected, info = ref.direction([g.double() for g in g_r], [g.double() for g in g_f], 1.0, 2.0)
    expected = [e.to(dtype).double() for e in expected]  # θ = −d is stored in the dtype
    # d is a difference of w_R·g_R and w_F·g_F: rounding is relative to those terms
    terms = (abs(info["w_retain"]) * math.sqrt(info["rr"])
             + abs(info["w_forget"]) * math.sqrt(info["ff"]))
    assert not stats.skipped.item(), stats.skip_reason
    for name in ("norm_retain", "norm_forget", "cosine", "weight_retain", "weight_forget",
                 "retain_dot_update", "forget_dot_update"):
        assert math.isfinite(getattr(stats, name).item()), name
    num = math.sqrt(sum(float(((x - y) ** 2).sum()) for x, y in zip(d, expected)))
    den = math.sqrt(sum(float((y**2).sum()) for y in expected))
    tol = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float64: 1e-12}[dtype]
    assert num <= tol * terms
    if den > 10 * tol * terms:  # the step moves whenever the reference really does (no
        # underflow to a zero step; a reference step below rounding level is no step)
        assert any(bool((x != 0).any()) for x in d)

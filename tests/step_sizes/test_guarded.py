"""GeN with the retain-loss safeguard ("gen-guard"): the rate never rises while the retain
loss climbs, backs off once it has risen, stays in its trust region; probes as GeN's."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastngd import NGDiffOptimizer
from fastngd.autolr import GeNConfig
from fastngd.step_sizes import STEP_SIZES, GuardConfig, GuardedGeNStep, get_step_size, guard_factor

from .test_gen import _problem


def _scripted(values: list[float], n: int = 4, seed: int = 0):
    """θ, a retain closure whose successive calls return ``values`` exactly (with the
    gradient of a fixed linear term), and a linear forget closure."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.nn.Parameter(torch.randn(n, generator=g, dtype=torch.float64))
    a = torch.randn(n, generator=g, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    it = iter(values)

    def retain():
        lin = a @ theta
        return torch.tensor(next(it), dtype=torch.float64) + lin - lin.detach()

    return theta, retain, lambda: b @ theta


def _script(l0: list[float], probes: list[tuple[float, float]], every: int) -> list[float]:
    """The closure values of ``len(l0)`` steps: ``L₀`` each step, the two probes on refits."""
    out: list[float] = []
    for k, value in enumerate(l0):
        out.append(value)
        if k % every == 0:
            out.extend(probes[k])
    return out


_increments = st.lists(st.floats(1e-4, 2.0), min_size=2, max_size=12)
_probe = st.tuples(st.floats(0.0, 5.0), st.floats(0.0, 5.0))


@settings(max_examples=60, deadline=None)
@given(start=st.floats(0.0, 5.0), increments=_increments, data=st.data(),
       every=st.sampled_from([1, 2, 3]), scale=st.floats(0.2, 1.9))
def test_rate_never_rises_while_the_retain_loss_climbs(start, increments, data, every, scale):
    """Any strictly increasing sequence of retain losses, any probe values: after the first
    refit the learning-rate scale never increases (it may fall)."""
    l0 = [start]
    for inc in increments:
        l0.append(l0[-1] + inc)
    probes = data.draw(st.lists(_probe, min_size=len(l0), max_size=len(l0)))
    theta, retain, forget = _scripted(_script(l0, probes, every))
    opt = NGDiffOptimizer([theta], lr=0.01, step_size="gen-guard", autolr_every=every,
                          autolr_scale=scale, autolr_clip=(0.25, 4.0), backend="torch")
    opt.step(retain, forget)
    scales = [opt.lr_scale.item()]
    for _ in l0[1:]:
        opt.step(retain, forget)
        scales.append(opt.lr_scale.item())
    assert all(b <= a for a, b in zip(scales, scales[1:])), scales


@settings(max_examples=40, deadline=None)
@given(start=st.floats(1.0, 5.0), decrements=st.lists(st.floats(1e-4, 0.05), min_size=2,
                                                        max_size=10), data=st.data())
def test_falling_retain_loss_leaves_gen_unchanged(start, decrements, data):
    """While the retain loss falls (the trend never climbs nor rises) and without a cap, the
    guarded rule takes exactly the paper's GeN steps, bit for bit."""
    l0 = [start]
    for dec in decrements:
        l0.append(l0[-1] - dec)
    probes = data.draw(st.lists(_probe, min_size=len(l0), max_size=len(l0)))
    values = _script(l0, probes, 1)
    runs = {}
    for name in ("gen", "gen-guard"):
        theta, retain, forget = _scripted(values)
        opt = NGDiffOptimizer([theta], lr=0.01, step_size=name, autolr_every=1,
                              backend="torch")
        trace = [(opt.step(retain, forget).lr.item(), opt.lr_scale.item()) for _ in l0]
        runs[name] = (trace, theta.detach().clone())
    assert runs["gen"][0] == runs["gen-guard"][0]
    assert torch.equal(runs["gen"][1], runs["gen-guard"][1])


def test_risen_retain_loss_backs_off_even_when_the_fit_is_rejected() -> None:
    """The trend jumps far above its best level: the rate falls by ``backoff`` at the refit,
    although the probes (G < 0) reject the fit, which alone would keep the rate."""
    values = [1.0, 1.0, 1.0] + [50.0, 60.0, 40.0]  # step 2: G = (40 − 60)/2 < 0
    theta, retain, forget = _scripted(values)
    step = GuardedGeNStep(GeNConfig(every=1), backoff=0.5, trend_ema=0.0)
    opt = NGDiffOptimizer([theta], lr=0.01, step_size=step, backend="torch")
    opt.step(retain, forget)
    first = opt.lr_scale.item()
    stats = opt.step(retain, forget)
    assert opt.lr_scale.item() == pytest.approx(0.5 * first)
    assert stats.lr_updated.item()


@settings(max_examples=40, deadline=None)
@given(cap=st.floats(1.0, 3.0), n=st.integers(2, 25))
def test_trust_region_caps_the_rate(cap: float, n: int) -> None:
    """A fit that always asks for twice the rate (t* = 2 on a falling loss) stops at
    ``max_scale`` × the initial rate."""
    l0 = [10.0 - 0.01 * k for k in range(n)]
    probes = [(v - 1.0, v + 3.0) for v in l0]  # G_t = 2, C_t = 2 → t* = 1 ... κ = 1.9
    theta, retain, forget = _scripted(_script(l0, probes, 1))
    step = get_step_size("gen-guard", GeNConfig(every=1, ema=0.0, scale=1.9), max_scale=cap)
    opt = NGDiffOptimizer([theta], lr=0.01, step_size=step, backend="torch")
    for _ in l0:
        opt.step(retain, forget)
        assert opt.lr_scale.item() <= cap * (1 + 1e-12)
    assert opt.lr_scale.item() == pytest.approx(min(cap, 1.9 ** n), rel=1e-9)


@given(factor=st.floats(0.1, 3.0), scale=st.floats(0.01, 50.0), trend=st.floats(0.0, 10.0),
       trend_fit=st.floats(0.0, 10.0), floor=st.floats(0.0, 10.0),
       tol=st.floats(0.0, 1.0), tol_abs=st.floats(0.0, 0.5), backoff=st.floats(0.1, 1.0),
       cap=st.one_of(st.just(math.inf), st.floats(1.0, 20.0)),
       low=st.one_of(st.just(0.0), st.floats(0.01, 1.0)))
def test_guard_factor_matches_its_definition(factor, scale, trend, trend_fit, floor, tol,
                                             tol_abs, backoff, cap, low) -> None:
    """Float64 reference: max(min(f, 1 if T > T_fit, backoff if T > (1+tol)F + tol_abs,
    cap/s), min(1, low/s))."""
    config = GuardConfig(tol=tol, tol_abs=tol_abs, backoff=backoff, max_scale=cap,
                         min_scale=low)
    t = lambda x: torch.tensor(x, dtype=torch.float64)
    got, risen = guard_factor(t(factor), t(scale), t(trend), t(trend_fit), t(floor), config)
    want = factor
    if trend > trend_fit:
        want = min(want, 1.0)
    is_risen = trend > (1 + tol) * floor + tol_abs
    if is_risen:
        want = min(want, backoff)
    want = min(want, cap / scale)
    if low > 0:
        want = max(want, min(1.0, low / scale))
    assert got.item() == pytest.approx(want, rel=1e-15) and bool(risen) == is_risen


def _trends(l0: list[float], beta: float) -> list[float]:
    """Float64 reference of the trend ``T_k = β·T_{k−1} + (1 − β)·L₀,k`` (``T_1 = L₀,1``)."""
    out = [l0[0]]
    for value in l0[1:]:
        out.append(beta * out[-1] + (1 - beta) * value)
    return out


def _guarded_run(l0: list[float], probes: list[tuple[float, float]], every: int,
                 guard: GuardConfig, gen: GeNConfig) -> list[float]:
    """The learning-rate scale after each step of a run on scripted losses (float64); the
    probes are offsets ``(L₊ − L₀, L₋ − L₀)``, so that fits are often accepted."""
    relative = [(v + a, v + b) for v, (a, b) in zip(l0, probes)]
    theta, retain, forget = _scripted(_script(l0, relative, every))
    step = GuardedGeNStep(gen, guard)
    opt = NGDiffOptimizer([theta], lr=0.01, step_size=step, backend="torch")
    scales = [1.0]
    for _ in l0:
        opt.step(retain, forget)
        scales.append(opt.lr_scale.item())
    return scales


def _walk(start: float, moves: list[float]) -> list[float]:
    out = [start]
    for move in moves:
        out.append(max(0.0, out[-1] + move))
    return out


#: retain losses: a noisy walk (small moves, so the trend climbs and falls without always
#: tripping the back-off) or arbitrary values.
_losses = st.one_of(
    st.builds(_walk, st.floats(1.0, 10.0), st.lists(st.floats(-0.3, 0.3), min_size=1,
                                                    max_size=13)),
    st.lists(st.floats(0.0, 20.0), min_size=2, max_size=14),
)
#: probe offsets ``(L₊ − L₀, L₋ − L₀) = (a, a + gap)``: G > 0 always, C > 0 unless a < −gap/2.
_offsets = st.builds(lambda a, gap: (a, a + gap), st.floats(-0.5, 1.0), st.floats(0.05, 4.0))
_guards = st.builds(GuardConfig, trend_ema=st.sampled_from([0.0, 0.5, 0.9]),
                    tol=st.floats(0.0, 1.0), tol_abs=st.floats(0.0, 0.5),
                    backoff=st.floats(0.3, 1.0),
                    max_scale=st.one_of(st.just(math.inf), st.floats(1.0, 4.0)),
                    min_scale=st.one_of(st.just(0.0), st.floats(0.05, 1.0)))
_gens = st.builds(lambda every, ema, lo, hi, scale: GeNConfig(every=every, ema=ema,
                                                               clip=(lo, hi), scale=scale),
                  st.sampled_from([1, 2, 3]), st.sampled_from([0.0, 0.5, 0.9]),
                  st.floats(0.2, 1.0), st.floats(1.0, 4.0), st.floats(0.2, 1.9))


@settings(max_examples=80, deadline=None)
@given(l0=_losses, data=st.data(), guard=_guards, gen=_gens)
def test_rate_never_rises_at_a_refit_where_the_trend_climbed(l0, data, guard, gen) -> None:
    """Any retain losses (rising, falling, noisy), any probes, any settings: at every refit
    whose trend ``T_k`` (float64 reference) is above the trend at the previous refit, the
    rate does not increase."""
    probes = data.draw(st.lists(_offsets, min_size=len(l0), max_size=len(l0)))
    scales = _guarded_run(l0, probes, gen.every, guard, gen)
    trend = _trends(l0, guard.trend_ema)
    fit = trend[0]
    for k in range(len(l0)):
        if k % gen.every:
            continue
        if trend[k] > fit + 1e-9 * (1.0 + abs(fit)):
            assert scales[k + 1] <= scales[k], (k, trend, scales)
        fit = trend[k]


@settings(max_examples=80, deadline=None)
@given(l0=_losses, data=st.data(), guard=_guards, gen=_gens)
def test_trust_region_bounds_every_change_of_the_rate(l0, data, guard, gen) -> None:
    """Any retain losses, any (finite) probes, any settings: each step changes the rate by a
    factor in ``[min(backoff, ema + (1 − ema)·lo, min_scale/s), ema + (1 − ema)·hi]`` (1
    between refits), and the rate stays within ``[min_scale, max_scale]`` × the initial."""
    probes = data.draw(st.lists(_offsets, min_size=len(l0), max_size=len(l0)))
    scales = _guarded_run(l0, probes, gen.every, guard, gen)
    lo, hi = gen.clip
    up = gen.ema + (1 - gen.ema) * hi
    eps = 1e-9
    for k in range(len(l0)):
        before, after = scales[k], scales[k + 1]
        if k % gen.every:
            assert after == before
            continue
        down = min(guard.backoff, gen.ema + (1 - gen.ema) * lo)
        if guard.min_scale > 0:
            down = max(down, min(1.0, guard.min_scale / before))
        assert before * down * (1 - eps) <= after <= before * up * (1 + eps), (k, scales)
        assert guard.min_scale * (1 - eps) <= after <= guard.max_scale * (1 + eps)


@pytest.mark.parametrize("base", ["sgd", "adam"])
def test_resume_is_bit_identical(base: str) -> None:
    """The trend is part of ``state_dict``: a resumed run takes the same steps."""
    theta, retain, forget = _problem(1)
    opt = NGDiffOptimizer([theta], lr=0.05, base=base, step_size="gen-guard", autolr_every=2,
                          backend="torch")
    for _ in range(3):
        opt.step(retain, forget)
    saved_theta, sd = theta.detach().clone(), copy.deepcopy(opt.state_dict())
    for _ in range(4):
        opt.step(retain, forget)
    end = theta.detach().clone()
    with torch.no_grad():
        theta.copy_(saved_theta)
    fresh = NGDiffOptimizer([theta], lr=0.05, base=base, step_size="gen-guard",
                            autolr_every=2, backend="torch")
    fresh.load_state_dict(sd)
    for _ in range(4):
        fresh.step(retain, forget)
    assert torch.equal(theta.detach(), end)


def test_probe_failure_restores_theta_and_state_advances_once() -> None:
    """Probing is GeN's: a closure that raises during a probe leaves θ bit-exactly as it was;
    a step with its two probes advances Adam's state once."""
    theta, retain, forget = _problem(2)
    opt = NGDiffOptimizer([theta], lr=0.05, base="adam", step_size="gen-guard",
                          autolr_every=1, backend="torch")
    theta0 = theta.detach().clone()
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return retain()

    with pytest.raises(RuntimeError, match="boom"):
        opt.step(flaky, forget)
    assert torch.equal(theta.detach(), theta0)
    fresh = NGDiffOptimizer([theta], lr=0.05, base="adam", step_size="gen-guard",
                            autolr_every=1, backend="torch")
    assert fresh.step(retain, forget).probe_losses is not None
    assert int(fresh.state[theta]["step"]) == 1


def test_registry_and_bad_options() -> None:
    assert STEP_SIZES["gen-guard"] is GuardedGeNStep
    assert isinstance(NGDiffOptimizer([torch.nn.Parameter(torch.zeros(2))],
                                      step_size="gen-guard").step_size, GuardedGeNStep)
    for kw in [{"trend_ema": 1.0}, {"tol": -1.0}, {"backoff": 0.0}, {"max_scale": 0.5},
               {"min_scale": -0.1}, {"min_scale": 1.5}]:
        with pytest.raises(ValueError):
            GuardConfig(**kw)
    with pytest.raises(TypeError):
        GuardedGeNStep(guard=GuardConfig(), max_scale=2.0)

"""GeN AutoLR: exact on a quadratic, acceptance rules, bit-exact restore of the parameters."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastngd import NGDiffOptimizer
from fastngd.autolr import GeNConfig, gen_fit, gen_rescale


def _quadratic_problem(seed: int, n: int = 5):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    a = m @ m.T + n * torch.eye(n, dtype=torch.float64)  # SPD Hessian of L_R
    center = torch.randn(n, generator=g, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)  # L_F = b·θ (constant gradient)
    theta = torch.nn.Parameter(torch.randn(n, generator=g, dtype=torch.float64))

    def retain():
        e = theta - center
        return 0.5 * e @ a @ e

    def forget():
        return b @ theta

    return theta, a, center, b, retain, forget


@given(seed=st.integers(0, 10_000))
def test_gen_is_exact_on_a_quadratic(seed: int) -> None:
    theta, a, center, b, retain, forget = _quadratic_problem(seed)
    g_r = a @ (theta.detach() - center)
    d = g_r / g_r.norm() - b / b.norm()
    eta_star = float(g_r @ d) / float(d @ a @ d)
    lr0 = eta_star / 1.7  # inside the clip window, so the fit is taken as is
    opt = NGDiffOptimizer([theta], lr=lr0, autolr=True, autolr_every=1, autolr_ema=0.0,
                          autolr_clip=(0.01, 100.0), backend="torch")
    theta0 = theta.detach().clone()
    stats = opt.step(retain, forget)
    assert stats.lr_updated.item()
    assert stats.lr.item() == pytest.approx(eta_star, rel=1e-7)
    assert torch.allclose(theta.detach(), theta0 - eta_star * d, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("base", ["momentum", "adam", "adamw"])
def test_gen_is_exact_along_the_bases_update(base: str) -> None:
    """GeN fits η* = g_Rᵀu/(uᵀH u) along the base's update u (first step: momentum's u = d,
    Adam's u = d/(|d| + ε), AdamW's the same plus the decay wd·θ)."""
    theta, a, center, b, retain, forget = _quadratic_problem(7)
    g_r = a @ (theta.detach() - center)
    d = g_r / g_r.norm() - b / b.norm()
    u = d if base == "momentum" else d / (d.abs() + 1e-8)
    if base == "adamw":
        u = u + 1e-2 * theta.detach()
    eta_star = float(g_r @ u) / float(u @ a @ u)
    lr0 = eta_star / 1.7
    opt = NGDiffOptimizer([theta], lr=lr0, base=base, autolr=True, autolr_every=1,
                          autolr_ema=0.0, autolr_clip=(0.01, 100.0), backend="torch")
    theta0 = theta.detach().clone()
    stats = opt.step(retain, forget)
    assert stats.lr_updated.item() and stats.gen_outcome.item() == 1
    assert stats.lr.item() == pytest.approx(eta_star, rel=1e-7)
    assert torch.allclose(theta.detach(), theta0 - eta_star * u, rtol=1e-12, atol=1e-12)


def test_ema_and_clip() -> None:
    cfg = GeNConfig(ema=0.9, clip=(0.5, 2.0))
    # L(t) = 1 - t·G + t²C/2 with G = 1, C = 0.1 → t* = 10, clipped to 2
    l0 = torch.tensor(1.0, dtype=torch.float64)
    lp, lm = 1 - 1 + 0.05, 1 + 1 + 0.05
    factor, accepted, t_star = gen_rescale(l0, torch.tensor(lp, dtype=torch.float64),
                                           torch.tensor(lm, dtype=torch.float64), cfg)
    assert accepted.item() and t_star.item() == pytest.approx(10.0)
    assert factor.item() == pytest.approx(0.9 + 0.1 * 2.0)


@pytest.mark.parametrize("lp,lm", [(1.5, 0.5), (0.0, 1.0), (float("nan"), 1.0), (0.9, 0.9)])
def test_rejected_fits_keep_the_rate(lp: float, lm: float) -> None:
    # (1.5, 0.5): G < 0;  (0.0, 1.0): C = -1 < 0;  NaN probe;  (0.9, 0.9): G = 0
    l0 = torch.tensor(1.0, dtype=torch.float64)
    factor, accepted, _ = gen_rescale(l0, torch.tensor(lp, dtype=torch.float64),
                                      torch.tensor(lm, dtype=torch.float64), GeNConfig())
    assert not accepted.item() and factor.item() == 1.0


def test_gen_fit_formula() -> None:
    g_t, c_t, t = gen_fit(torch.tensor(2.0), torch.tensor(1.5), torch.tensor(3.5))
    assert (g_t.item(), c_t.item(), t.item()) == (1.0, 1.0, 1.0)


def test_config_validation() -> None:
    for kw in [{"every": 0}, {"ema": 1.0}, {"clip": (2.0, 3.0)}, {"scale": 2.0},
               {"shrink": 1.0}]:
        with pytest.raises(ValueError):
            GeNConfig(**kw)


def test_gen_runs_every_k_calls() -> None:
    theta, *_, retain, forget = _quadratic_problem(3)
    opt = NGDiffOptimizer([theta], lr=0.01, autolr_every=3, backend="torch")
    probed = [opt.step(retain, forget).probe_losses is not None for _ in range(7)]
    assert probed == [True, False, False, True, False, False, True]


def test_probe_exception_restores_parameters_bit_exactly() -> None:
    theta, *_, retain, forget = _quadratic_problem(4)
    opt = NGDiffOptimizer([theta], lr=0.05, autolr_every=1, backend="torch")
    theta0 = theta.detach().clone()
    calls = {"n": 0}
    seen = []

    def flaky_retain():
        calls["n"] += 1
        if calls["n"] > 1:
            seen.append(theta.detach().clone())
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return retain()

    with pytest.raises(RuntimeError, match="boom"):
        opt.step(flaky_retain, forget)
    assert seen and not torch.equal(seen[0], theta0)  # the probes did move θ
    assert torch.equal(theta.detach(), theta0)  # ... and θ came back bit-exactly
    assert theta.grad is None and opt.lr_scale.item() == 1.0


def test_probes_are_symmetric_about_theta() -> None:
    theta, *_, retain, forget = _quadratic_problem(5)
    opt = NGDiffOptimizer([theta], lr=0.05, autolr_every=1, backend="torch")
    theta0 = theta.detach().clone()
    seen = []

    def spy():
        seen.append(theta.detach().clone())
        return retain()

    opt.step(spy, forget)
    base, plus, minus = seen
    assert torch.equal(base, theta0)
    assert torch.allclose((plus + minus) / 2, theta0, atol=1e-15)
    assert (plus - theta0).norm() > 0.01  # ξ·‖d‖ with ξ = 0.05, ‖d‖ ∈ (0, 2]

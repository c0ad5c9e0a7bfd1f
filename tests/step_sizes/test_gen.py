"""GeN along the real update u: probes, the base's state, non-finite probes."""
from __future__ import annotations

import copy

import pytest
import torch

from fastngd import NGDiffOptimizer
from fastngd.stats import GEN_OUTCOMES


def _problem(seed: int = 0, n: int = 6):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    a = a @ a.T + n * torch.eye(n, dtype=torch.float64)
    center = torch.randn(n, generator=g, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    theta = torch.nn.Parameter(torch.randn(n, generator=g, dtype=torch.float64))
    retain = lambda: 0.5 * (theta - center) @ a @ (theta - center)
    forget = lambda: b @ theta
    return theta, retain, forget


def test_probes_are_along_adams_update_not_along_d() -> None:
    """First Adam step: u = m̂/(√v̂ + ε) = d/(|d| + ε) ≈ sign(d); the probes sit at θ ∓ ξu."""
    theta, retain, forget = _problem()
    opt = NGDiffOptimizer([theta], lr=0.01, base="adam", autolr_every=1, backend="torch")
    theta0 = theta.detach().clone()
    seen = []

    def spy():
        seen.append(theta.detach().clone())
        return retain()

    stats = opt.step(spy, forget)
    _, plus, minus = seen
    u = (theta0 - plus) / 0.01
    assert torch.allclose(u.abs(), torch.ones_like(u), atol=1e-6)  # sign(d), not d
    assert torch.equal((plus + minus) / 2, theta0) or torch.allclose((plus + minus) / 2, theta0,
                                                                      atol=1e-15)
    assert stats.probe_losses is not None and stats.gen_outcome.item() in (1, 2)
    # the step taken is along the same u, scaled by the fitted rate
    step = (theta0 - theta.detach()) / (0.01 * opt.lr_scale.item())
    assert torch.allclose(step, u, atol=1e-9)


@pytest.mark.parametrize("base", ["momentum", "adam", "adamw"])
def test_state_advances_once_per_gen_step(base: str) -> None:
    """Two probes and a step: the base's state is that of one step of torch's optimizer fed
    the same direction (rule "gd": d = g_R)."""
    theta, retain, forget = _problem(1)
    twin = torch.nn.Parameter(theta.detach().clone())
    g_r = torch.autograd.grad(retain(), theta)[0]
    opt = NGDiffOptimizer([theta], lr=0.01, rule="gd", base=base, autolr_every=1,
                          backend="torch")
    stats = opt.step(retain, forget)
    assert stats.probe_losses is not None
    ref = {"momentum": lambda: torch.optim.SGD([twin], lr=0.01, momentum=0.9),
           "adam": lambda: torch.optim.Adam([twin], lr=0.01),
           "adamw": lambda: torch.optim.AdamW([twin], lr=0.01)}[base]()
    twin.grad = g_r
    ref.step()
    for name, value in ref.state[twin].items():
        assert torch.allclose(opt.state[theta][name].double(), value.double(), rtol=1e-12), name


def test_non_finite_probe_does_not_take_the_step() -> None:
    """A real overflow along u: L_R(θ − ξu) = inf. θ stays bit-exactly, the rate halves, the
    statistics say so, and the run goes on (later steps move θ)."""
    theta = torch.nn.Parameter(torch.tensor([0.0, 0.0], dtype=torch.float64))
    target = torch.tensor([1.0, -1.0], dtype=torch.float64)

    def retain():
        # finite at θ and near it, overflows for a step larger than 0.5 along u
        return torch.exp(1000.0 * torch.relu((theta - 0.0).abs().max() - 0.5)) * ((theta - target) ** 2).sum()

    def forget():
        return (theta * torch.tensor([0.3, 0.1], dtype=torch.float64)).sum()

    opt = NGDiffOptimizer([theta], lr=1.0, autolr_every=1, backend="torch")
    stats = opt.step(retain, forget)
    assert torch.equal(theta.detach(), torch.zeros(2, dtype=torch.float64))
    assert stats.gen_outcome.item() == 3 and "halved" in stats.gen_report
    assert GEN_OUTCOMES[3] == stats.gen_report
    assert not stats.skipped.item() and stats.lr.item() == 0.0
    assert opt.lr_scale.item() == 0.5 and opt.num_steps.item() == 0
    assert not torch.isfinite(stats.probe_losses).all()
    for _ in range(3):
        stats = opt.step(retain, forget)
    assert stats.gen_outcome.item() in (1, 2) and opt.num_steps.item() >= 1
    assert bool(torch.isfinite(theta).all()) and not torch.equal(theta.detach(), torch.zeros(2, dtype=torch.float64))


@pytest.mark.parametrize("base", ["sgd", "adam"])
def test_skipped_gen_step_leaves_everything(base: str) -> None:
    theta, retain, forget = _problem(2)
    opt = NGDiffOptimizer([theta], lr=0.01, base=base, autolr_every=1, backend="torch")
    opt.step(retain, forget)
    before, sd = theta.detach().clone(), copy.deepcopy(opt.state_dict())
    stats = opt.step(lambda: retain() * float("nan"), forget)
    assert stats.skipped.item() and stats.gen_outcome.item() == 4
    assert torch.equal(theta.detach(), before)
    after = opt.state_dict()
    for k, v in sd["state"][0].items():
        assert torch.equal(after["state"][0][k], v), k
    assert torch.equal(opt.lr_scale, sd["ngdiff"]["lr_scale"])


def test_custom_step_size_by_instance_and_name_registry() -> None:
    from fastngd.step_sizes import STEP_SIZES, FixedStep, get_step_size

    class Half(FixedStep):
        name = "half"

        def apply(self, run, ctx):
            res = super().apply(run, ctx.__class__(**{**ctx.__dict__, "lr_scale": ctx.lr_scale * 0.5}))
            return res

    theta, retain, forget = _problem(3)
    opt = NGDiffOptimizer([theta], lr=0.01, step_size=Half(), backend="torch")
    stats = opt.step(retain, forget)
    assert stats.lr.item() == pytest.approx(0.005) and not opt.autolr
    assert {"fixed", "gen"} <= set(STEP_SIZES)
    with pytest.raises(ValueError, match="valid"):
        get_step_size("gen-safeguarded")
    assert NGDiffOptimizer([theta], step_size="fixed").step_size.name == "fixed"

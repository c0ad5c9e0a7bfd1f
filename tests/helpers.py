"""Small models and data shared by the optimizer tests."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F


class TinyNet(nn.Module):
    """A smooth two-layer network whose forward runs in float32 whatever the parameter dtype."""

    def __init__(self, d_in: int = 6, hidden: int = 12, d_out: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acc = torch.float64 if self.fc1.weight.dtype == torch.float64 else torch.float32
        h = torch.tanh(F.linear(x.to(acc), self.fc1.weight.to(acc), self.fc1.bias.to(acc)))
        return F.linear(h, self.fc2.weight.to(acc), self.fc2.bias.to(acc))


def make_task(seed: int = 0, n_retain: int = 48, n_forget: int = 16, d_in: int = 6, classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    xr = torch.randn(n_retain, d_in, generator=g)
    yr = torch.randint(0, classes, (n_retain,), generator=g)
    xf = torch.randn(n_forget, d_in, generator=g)
    yf = torch.randint(0, classes, (n_forget,), generator=g)
    return xr, yr, xf, yf


def make_net(seed: int = 0, dtype: torch.dtype = torch.float32) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet().to(dtype)


def closures(model: nn.Module, task):
    xr, yr, xf, yf = task

    def retain() -> torch.Tensor:
        return F.cross_entropy(model(xr), yr)

    def forget() -> torch.Tensor:
        return F.cross_entropy(model(xf), yf)

    return retain, forget


def applied_direction(rule, g_r, g_f, base="sgd", **kw):
    """``d`` the optimizer applies for gradients ``g_r``, ``g_f`` (lists), and its stats:
    parameters at zero, ``lr = 1``, gradients fed through ``stash_retain_grad`` and
    ``step_from_grads``, so the parameters after the step are exactly ``−d`` (float64 copies
    are returned)."""
    from fastngd import NGDiffOptimizer

    params = [torch.zeros_like(g, requires_grad=True) for g in g_r]
    opt = NGDiffOptimizer(params, lr=1.0, rule=rule, base=base, autolr=False, backend="torch",
                          **kw)
    for p, g in zip(params, g_r):
        p.grad = g.clone()
    opt.stash_retain_grad(torch.tensor(1.0))
    for p, g in zip(params, g_f):
        p.grad = g.clone()
    stats = opt.step_from_grads(loss_forget=torch.tensor(2.0))
    return [-p.detach().double() for p in params], stats


def clone_as(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    m = copy.deepcopy(model)
    return m.to(dtype)

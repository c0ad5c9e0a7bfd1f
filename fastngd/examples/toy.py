"""A toy unlearning run: a small classifier forgets one class and keeps the others.

Run with ``python -m fastngd.examples.toy``. It trains an MLP on a synthetic 4-class problem,
then unlearns class 0 with ``NGDiffOptimizer`` (NGDiff + GeN AutoLR) and prints the retain
loss falling and the forget loss rising, with the accuracies on both sets.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from fastngd import NGDiffOptimizer


def make_data(seed: int = 0, n: int = 800, dim: int = 4, classes: int = 4):
    """Gaussian clusters, one per class; returns (x, y)."""
    g = torch.Generator().manual_seed(seed)
    centers = 1.5 * torch.randn(classes, dim, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + torch.randn(n, dim, generator=g)
    return x, y


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean().item()


def main(steps: int = 60, seed: int = 0) -> dict[str, float]:
    """Train, then unlearn class 0; returns the final losses and accuracies."""
    torch.manual_seed(seed)
    x, y = make_data(seed)
    model = nn.Sequential(nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 4))
    pre = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        pre.zero_grad()
        F.cross_entropy(model(x), y).backward()
        pre.step()
    forget, retain = y == 0, y != 0
    xf, yf, xr, yr = x[forget], y[forget], x[retain], y[retain]
    print(f"trained: retain acc {accuracy(model, xr, yr):.3f}, "
          f"forget acc {accuracy(model, xf, yf):.3f}")

    opt = NGDiffOptimizer(model.parameters(), lr=0.05, rule="ngdiff", autolr=True,
                          autolr_every=5)
    print(f"{'step':>4} {'retain loss':>12} {'forget loss':>12} {'lr':>9}")
    for step in range(steps + 1):
        stats = opt.step(lambda: F.cross_entropy(model(xr), yr),
                         lambda: F.cross_entropy(model(xf), yf))
        if step % 10 == 0:
            s = stats.as_dict()
            print(f"{step:4d} {s['loss_retain']:12.4f} {s['loss_forget']:12.4f} {s['lr']:9.4f}")
    result = {
        "retain_loss": F.cross_entropy(model(xr), yr).item(),
        "forget_loss": F.cross_entropy(model(xf), yf).item(),
        "retain_accuracy": accuracy(model, xr, yr),
        "forget_accuracy": accuracy(model, xf, yf),
    }
    print(f"unlearned: retain acc {result['retain_accuracy']:.3f}, "
          f"forget acc {result['forget_accuracy']:.3f}")
    return result


if __name__ == "__main__":
    main()

"""The float64 reference itself: hand-computed values, and each base against torch.optim."""
from __future__ import annotations

import pytest
import torch
from fastngd.kernels import naive

from fastngd.backends.base import state_names
from fastngd.compact import quantize_blockwise


def test_gram_fixed_values() -> None:
    r = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    f = [torch.tensor([4.0, -1.0]), torch.tensor([[0.5]])]
    assert naive.gram(r, f).tolist() == [14.0, 17.25, 3.5]
    assert naive.gram(r, f, per_tensor=True).tolist() == [[5.0, 17.0, 2.0], [9.0, 0.25, 1.5]]


def test_direction_step_perturb_fixed_values() -> None:
    r, f = torch.tensor([1.0, -2.0, 3.0, 0.0]), torch.tensor([2.0, 1.0, -1.0, 5.0])
    assert naive.direction(r, f, (2.0, 1.0)).tolist() == [0.0, -5.0, 7.0, -5.0]
    # signs conflict only at coordinate 0 → retain there; elsewhere −w_F·f (sago) or linear
    assert naive.direction(r, f, (2.0, 1.0), "sago").tolist() == [2.0, -1.0, 1.0, -5.0]
    assert naive.direction(r, f, (2.0, 1.0), "sago_prefer_retain").tolist() == [2.0, -5.0, 7.0, -5.0]
    p = torch.ones(4)
    hyper = torch.tensor([[0.5, 0, 0, 0, 0, 1, 1], [0.0, 0, 0, 0, 0, 1, 1]], dtype=torch.float64)
    w = torch.tensor([[2.0, 1.0], [2.0, 1.0]], dtype=torch.float64)
    new, _, prod = naive.step([p, p], [r, r], [f, f], [], hyper, w, "sgd")
    assert new[0].tolist() == [1.0, 3.5, -2.5, 3.5] and new[1].tolist() == [1.0] * 4
    assert prod.tolist() == [31.0, -37.0]  # r·d and f·d of the live tensor only
    assert naive.perturb([p], [r], [-2.0])[0].tolist() == [-1.0, 5.0, -5.0, 1.0]


def test_dense_of_codes_is_the_float32_dequantization() -> None:
    x = torch.randn(300)
    q = quantize_blockwise(x)
    assert torch.equal(naive.dense(q), q.dequantize(torch.float32).double())


_TORCH = {
    "sgd": lambda ps, wd: torch.optim.SGD(ps, lr=0.1, weight_decay=wd),
    "momentum": lambda ps, wd: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=wd),
    "adam": lambda ps, wd: torch.optim.Adam(ps, lr=0.1, betas=(0.8, 0.95), eps=1e-6,
                                            weight_decay=wd),
    "adamw": lambda ps, wd: torch.optim.AdamW(ps, lr=0.1, betas=(0.8, 0.95), eps=1e-6,
                                              weight_decay=wd),
}


@pytest.mark.parametrize("kind", list(_TORCH))
def test_each_base_matches_torch_optim_over_seven_steps(kind: str) -> None:
    """torch's optimizer fed with the reference direction d as its gradient (float64)."""
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(50, generator=g, dtype=torch.float64)
    wd = 0.05
    theta = torch.nn.Parameter(p0.clone())
    opt = _TORCH[kind]([theta], wd)
    p = p0.clone()
    state = [[torch.zeros(50, dtype=torch.float64)] for _ in state_names(kind)]
    b1, b2 = (0.9, 0.0) if kind == "momentum" else (0.8, 0.95)
    for t in range(1, 8):
        r, f = (torch.randn(50, generator=g, dtype=torch.float64) for _ in range(2))
        w = torch.tensor([[0.7, 0.4]], dtype=torch.float64)
        hyper = torch.tensor([[0.1, wd, b1, b2, 1e-6, 1 - b1**t, 1 - b2**t]], dtype=torch.float64)
        (p,), state, _ = naive.step([p], [r], [f], state, hyper, w, kind, "linear")
        theta.grad = naive.direction(r, f, (0.7, 0.4))
        opt.step()
        torch.testing.assert_close(p, theta.detach(), rtol=1e-13, atol=1e-14)

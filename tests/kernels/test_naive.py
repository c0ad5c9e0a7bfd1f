"""The float64 reference itself, on hand-computed values."""
from __future__ import annotations

import torch
from fastngd.kernels import naive

from fastngd.compact import quantize_blockwise


def test_gram_fixed_values() -> None:
    r = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    f = [torch.tensor([4.0, -1.0]), torch.tensor([[0.5]])]
    assert naive.gram(r, f).tolist() == [14.0, 17.25, 3.5]


def test_direction_update_perturb_fixed_values() -> None:
    r, f = torch.tensor([1.0, -2.0, 3.0, 0.0]), torch.tensor([2.0, 1.0, -1.0, 5.0])
    assert naive.direction(r, f, (2.0, 1.0)).tolist() == [0.0, -5.0, 7.0, -5.0]
    # sago: signs agree only at coordinate 0 → retain there, −w_F·f elsewhere
    assert naive.direction(r, f, (2.0, 1.0), sago=True).tolist() == [2.0, -1.0, 1.0, -5.0]
    p = torch.ones(4)
    new = naive.update([p, p], [r, r], [f, f], [0.5, 0.0], (2.0, 1.0))
    assert new[0].tolist() == [1.0, 3.5, -2.5, 3.5] and new[1].tolist() == [1.0] * 4
    assert naive.perturb([p], [r], [-2.0])[0].tolist() == [-1.0, 5.0, -5.0, 1.0]


def test_dense_of_codes_is_the_float32_dequantization() -> None:
    x = torch.randn(300)
    q = quantize_blockwise(x)
    assert torch.equal(naive.dense(q), q.dequantize(torch.float32).double())

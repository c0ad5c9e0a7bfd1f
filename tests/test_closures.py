"""Checks on closures: scalar floating losses, and that they reach the managed parameters."""
from __future__ import annotations

import pytest
import torch

from fastngd.closures import backward_into, check_loss


def test_check_loss() -> None:
    assert check_loss(torch.ones(1, 1), "f").shape == ()
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_loss(1.0, "f")
    with pytest.raises(ValueError, match="scalar"):
        check_loss(torch.ones(2), "f")
    with pytest.raises(TypeError, match="floating"):
        check_loss(torch.ones((), dtype=torch.int64), "f")


def test_backward_into_sees_a_loss_that_misses_the_parameters() -> None:
    mine, other = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    backward_into((mine * 2).sum(), "f", [mine])
    assert mine.grad is not None
    mine.grad = None
    with pytest.raises(ValueError, match="any parameter of this optimizer"):
        backward_into((other * 2).sum(), "closure_retain", [mine])
    with pytest.raises(ValueError, match="any trainable parameter"):
        backward_into(torch.ones(()), "f", [mine])

"""Checks on what the user's closures return and on which parameters they reach."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

__all__ = ["backward_into", "check_loss"]


def check_loss(loss: Any, who: str) -> Tensor:
    """``loss`` as a 0-d tensor; ``TypeError``/``ValueError`` unless it is a scalar
    floating-point tensor."""
    if not isinstance(loss, Tensor):
        raise TypeError(f"{who} must return a scalar torch.Tensor, got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(f"{who} must return a scalar loss, got shape {tuple(loss.shape)}")
    if not loss.is_floating_point():
        raise TypeError(f"{who} must return a floating-point loss, got {loss.dtype}")
    return loss.reshape(())


def backward_into(loss: Tensor, who: str, params: Iterable[Tensor]) -> None:
    """``loss.backward()``, then check that at least one of ``params`` (the optimizer's
    parameters, whose ``.grad`` was ``None`` before) received a gradient.

    Raises ``ValueError`` when the loss does not require grad, or when it reaches none of
    ``params`` (it was computed from another model, or from tensors the optimizer does not
    manage): such a task would silently get weight 0 and the step would follow the other
    task alone.
    """
    if not loss.requires_grad:
        raise ValueError(f"the loss from {who} does not depend on any trainable parameter")
    loss.backward()
    if all(p.grad is None for p in params):
        raise ValueError(
            f"the loss from {who} does not depend on any parameter of this optimizer (no "
            "managed parameter received a gradient): does the closure use the model whose "
            "parameters were given to the optimizer?"
        )

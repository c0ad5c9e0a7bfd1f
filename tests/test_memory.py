"""Measured memory: exact mode holds one gradient-sized buffer besides ``.grad`` and the
base's state, GeN included.

A model of large weights and tiny activations makes the gradient the dominant allocation.
During ``step`` an optimizer must hold at least one gradient (the backward writes it); exact
mode adds one more (g_R), GeN included; the base's state (momentum buffer, Adam's moments) is
allocated at the first step and kept. A naive implementation that clones g_R, backs θ up in a
fresh buffer for GeN or builds temporaries of parameter size would exceed the bound.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fastngd import NGDiffOptimizer
from fastngd.backends.torch_backend import CHUNK
from fastngd.bases import get_base
from fastngd.memory import peak_extra_bytes

#: a few float32 temporaries of CHUNK elements (the chunked paths, e.g. SAGO), and the
#: scratch buffer of one in-place work item: independent of the model size.
CONSTANT = 8 * CHUNK * 4



def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1024, 1024), nn.Tanh(), nn.Linear(1024, 1024))


def _grad_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.mark.parametrize("autolr", [False, True])
@pytest.mark.parametrize("rule,base", [("ngdiff", "sgd"), ("sago", "sgd"), ("ngdiff", "momentum"),
                                       ("ngdiff", "adamw"), ("sago", "adam")])
def test_exact_mode_holds_one_extra_gradient_and_the_state(rule: str, base: str,
                                                           autolr: bool) -> None:
    model = _model()
    x_r, x_f = torch.randn(2, 1024), torch.randn(2, 1024)
    opt = NGDiffOptimizer(model.parameters(), lr=1e-3, rule=rule, base=base, autolr=autolr,
                          autolr_every=1, backend="torch")
    cr = lambda: model(x_r).pow(2).mean()
    cf = lambda: model(x_f).pow(2).mean()
    grad = _grad_bytes(model)
    state = len(get_base(base).state_names) * grad  # float32 parameters: float32 state
    first = peak_extra_bytes(lambda: opt.step(cr, cf))  # allocates the state
    held = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values())
    assert state <= held <= state + 64 * len(opt.state)  # the buffers (and step counters)
    assert first <= 2 * grad + state + CONSTANT, f"first step {first / grad:.3f}× a gradient"
    peak = peak_extra_bytes(lambda: opt.step(cr, cf))
    # g_F (the .grad any optimizer holds) + g_R (the one extra buffer) + a constant; the
    # state already exists
    assert peak <= 2 * grad + CONSTANT, f"peak {peak / grad:.3f}× one gradient"
    assert peak >= 1.9 * grad  # the tracker does see both gradients


def test_tracker_sees_a_naive_clone() -> None:
    """The measurement has teeth: an extra gradient clone shows up in the peak."""
    model = _model()
    x = torch.randn(2, 1024)

    def naive_step():
        model(x).pow(2).mean().backward()
        stash = [p.grad.clone() for p in model.parameters()]
        for p in model.parameters():
            p.grad = None
        model(x).pow(2).mean().backward()
        d = [a - b for a, b in zip(stash, (p.grad for p in model.parameters()))]
        del d, stash
        for p in model.parameters():
            p.grad = None

    assert peak_extra_bytes(naive_step) >= 2.9 * _grad_bytes(model)

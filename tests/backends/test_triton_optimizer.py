"""The whole optimizer with backend="triton" (CPU, Triton interpreter) against backend="torch"."""
from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import copy
import io

import pytest
import torch
from torch import nn

from fastngd import NGDiffOptimizer
from fastngd.backends.triton import TritonBackend
from fastngd.compact import QuantizedTensor
from fastngd.rules import RULES

from ..helpers import TinyNet, closures, make_task

D_IN, HIDDEN = 64, 80  # fc1.weight has 5120 elements: two chunks of the default 4096
TOL = {torch.float32: {"rtol": 1e-4, "atol": 1e-5}, torch.bfloat16: {"rtol": 2e-2, "atol": 2e-2}}


def _net(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return TinyNet(d_in=D_IN, hidden=HIDDEN).to(dtype)


def _run(model: nn.Module, backend: str, rule: str, autolr: bool, steps: int = 7, **kw):
    cr, cf = closures(model, make_task(0, d_in=D_IN))
    opt = NGDiffOptimizer(model.parameters(), lr=0.05, rule=rule, backend=backend,
                          autolr=autolr, autolr_every=2, **kw)
    history = [opt.step(cr, cf) for _ in range(steps)]
    return opt, history


def _compare(dtype: torch.dtype, rule: str, autolr: bool, **kw) -> None:
    base = _net(dtype)
    m_tr, m_to = copy.deepcopy(base), copy.deepcopy(base)
    opt_tr, h_tr = _run(m_tr, "triton", rule, autolr, **kw)
    _, h_to = _run(m_to, "torch", rule, autolr, **kw)
    assert all(isinstance(b, TritonBackend) for b in opt_tr._backends.values())
    moved = False
    for a, b, p0 in zip(m_tr.parameters(), m_to.parameters(), base.parameters()):
        torch.testing.assert_close(a.double(), b.double(), **TOL[dtype])
        moved = moved or not torch.equal(a, p0)
    assert moved
    for s_tr, s_to in zip(h_tr, h_to):
        assert bool(s_tr.skipped) == bool(s_to.skipped)
        torch.testing.assert_close(s_tr.lr_scale.double(), s_to.lr_scale.double(), **TOL[dtype])
        torch.testing.assert_close(s_tr.weight_retain.double(), s_to.weight_retain.double(),
                                   **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("autolr", [False, True], ids=["fixed_lr", "autolr"])
def test_matches_torch_backend(dtype: torch.dtype, rule: str, autolr: bool) -> None:
    _compare(dtype, rule, autolr)


@pytest.mark.parametrize("rule", ["ngdiff", "sago", "pcgrad"])
def test_compact_storage_matches_torch_backend(rule: str) -> None:
    _compare(torch.float32, rule, True, retain_storage="int8")


def test_compact_state_dict_round_trip_of_codes_and_scales() -> None:
    """Mid-step state (codes + fp32 scales) survives torch.save/torch.load(weights_only)."""
    model = _net(torch.float32)
    twin = copy.deepcopy(model)
    task = make_task(0, d_in=D_IN)
    outs = []
    for m, through_disk in ((model, False), (twin, True)):
        cr, cf = closures(m, task)
        opt = NGDiffOptimizer(m.parameters(), lr=0.05, backend="triton", autolr=False,
                              retain_storage="int8")
        loss_r = cr()
        loss_r.backward()
        opt.stash_retain_grad(loss_r)
        if through_disk:
            buf = io.BytesIO()
            torch.save(opt.state_dict(), buf)
            buf.seek(0)
            sd = torch.load(buf, weights_only=True)
            stored = [v["retain_grad"] for v in sd["state"].values()]
            assert stored and all(isinstance(q, QuantizedTensor) for q in stored)
            assert all(q.codes.dtype == torch.uint8 and q.absmax.dtype == torch.float32
                       for q in stored)
            fresh = NGDiffOptimizer(m.parameters(), lr=0.05, backend="triton", autolr=False,
                                    retain_storage="int8")
            fresh.load_state_dict(sd)
            for p in m.parameters():
                a, b = fresh.state[p]["retain_grad"], opt.state[p]["retain_grad"]
                assert torch.equal(a.codes, b.codes) and torch.equal(a.absmax, b.absmax)
            opt.discard_retain_grad()
            opt = fresh
        loss_f = cf()
        loss_f.backward()
        opt.step_from_grads(loss_forget=loss_f.detach())
        outs.append([p.detach().clone() for p in m.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*outs))

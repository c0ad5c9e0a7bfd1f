"""The whole optimizer with backend="triton" (CPU, Triton interpreter) against backend="torch"
over 7 steps: every base, every rule once, each base in every setting of GeN × storage ×
dtype (an orthogonal array: 16 comparisons, the interpreter being slow)."""
from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import copy
import io

import pytest
import torch
from torch import nn

from fastngd import BASES, NGDiffOptimizer
from fastngd.backends.triton import TritonBackend
from fastngd.compact import QuantizedTensor
from fastngd.rules import RULES

from ..helpers import TinyNet, closures, make_task

D_IN, HIDDEN = 64, 80
LR = 0.05
TOL = {torch.float32: {"rtol": 1e-4, "atol": 1e-5}, torch.bfloat16: {"rtol": 2e-2, "atol": 2e-2}}
#: (GeN, storage, dtype): each pair of values of two of them meets in one of the four rows.
SETTINGS = [(True, "exact", torch.float32), (True, "int8", torch.bfloat16),
            (False, "exact", torch.bfloat16), (False, "int8", torch.float32)]


def _combos() -> list[tuple[str, str, bool, str, torch.dtype]]:
    """Rule ``i`` (sorted) goes to base ``i mod 4`` in setting ``(i // 4 + i) mod 4``: every
    rule once, every base in every setting."""
    out = []
    for i, rule in enumerate(sorted(RULES)):
        b = i % len(BASES)
        out.append((BASES[b], rule, *SETTINGS[(i // len(BASES) + b) % len(SETTINGS)]))
    return out


def _id(combo) -> str:
    base, rule, gen, storage, dtype = combo
    return f"{base}-{rule}-{'gen' if gen else 'fixed'}-{storage}-{str(dtype)[6:]}"


def _net(dtype: torch.dtype) -> nn.Module:
    """TinyNet with ``fc2.weight`` stored transposed: a non-contiguous parameter (and
    gradient), which the Triton backend takes through its per-tensor path."""
    torch.manual_seed(0)
    net = TinyNet(d_in=D_IN, hidden=HIDDEN).to(dtype)
    net.fc2.weight.data = net.fc2.weight.data.t().contiguous().t()
    assert not net.fc2.weight.is_contiguous()
    return net


def _run(model: nn.Module, backend: str, rule: str, autolr: bool, steps: int = 7, **kw):
    cr, cf = closures(model, make_task(0, d_in=D_IN))
    opt = NGDiffOptimizer(model.parameters(), lr=LR, rule=rule, backend=backend,
                          autolr=autolr, autolr_every=2, **kw)
    history = [opt.step(cr, cf) for _ in range(steps)]
    return opt, history


def _assert_close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype, base: str,
                  bound: float) -> None:
    """``a ≈ b`` at the float tolerance, except that under Adam a few entries may differ by
    more, up to ``bound``: Adam divides by sqrt(v), so where an entry's gradient stays near
    0, a one-ulp difference in d (or an int8 code rounded the other way at a tie, once the
    parameters have drifted by ulps) moves that entry's step by a fraction of ``lr``, and
    its state follows. A wrong formula moves most entries, so at most 0.2 % of the entries
    may exceed the float tolerance."""
    if base not in ("adam", "adamw"):
        torch.testing.assert_close(a.double(), b.double(), **TOL[dtype])
        return
    tol = TOL[dtype]
    diff = (a.detach().double() - b.detach().double()).abs()
    outside = diff > tol["atol"] + tol["rtol"] * b.double().abs()
    assert int(outside.sum()) <= max(1, int(2e-3 * a.numel())), (int(outside.sum()), a.numel())
    assert float(diff.max()) <= bound, (float(diff.max()), bound)


def _compare(dtype: torch.dtype, rule: str, autolr: bool, **kw) -> None:
    start = _net(dtype)
    m_tr, m_to = copy.deepcopy(start), copy.deepcopy(start)
    opt_tr, h_tr = _run(m_tr, "triton", rule, autolr, **kw)
    opt_to, h_to = _run(m_to, "torch", rule, autolr, **kw)
    assert all(isinstance(b, TritonBackend) for b in opt_tr._backends.values())
    moved = False
    for a, b, p0 in zip(m_tr.parameters(), m_to.parameters(), start.parameters()):
        # parameters: within a tenth of one step
        _assert_close(a, b, dtype, kw.get("base", "sgd"), bound=0.1 * LR)
        moved = moved or not torch.equal(a, p0)
    assert moved
    for (pa, sa), (pb, sb) in zip(opt_tr.state.items(), opt_to.state.items()):
        for key in set(sa) & {"momentum_buffer", "exp_avg", "exp_avg_sq", "step"}:
            # state: within 5 % of its largest entry
            _assert_close(sa[key], sb[key], dtype, kw.get("base", "sgd"),
                          bound=0.05 * float(sb[key].double().abs().max()))
    for s_tr, s_to in zip(h_tr, h_to):
        assert bool(s_tr.skipped) == bool(s_to.skipped)
        for name in ("lr_scale", "weight_retain", "weight_forget"):
            torch.testing.assert_close(getattr(s_tr, name).double(),
                                       getattr(s_to, name).double(), **TOL[dtype])
        scale = float(s_to.retain_dot_update.abs() + s_to.forget_dot_update.abs()) + 1e-30
        for name in ("retain_dot_update", "forget_dot_update"):
            assert abs(float(getattr(s_tr, name) - getattr(s_to, name))) <= 1e-2 * scale


def test_the_combinations_cover_every_rule_base_and_setting() -> None:
    combos = _combos()
    assert {c[1] for c in combos} == set(RULES)
    for base in BASES:
        assert {c[2:] for c in combos if c[0] == base} == set(SETTINGS)


@pytest.mark.parametrize("combo", _combos(), ids=_id)
def test_matches_torch_backend(combo) -> None:
    base, rule, gen, storage, dtype = combo
    _compare(dtype, rule, gen, base=base, retain_storage=storage)


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

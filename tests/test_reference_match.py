"""Differential test: the optimizer against the naive float64 reference over 7 steps."""
from __future__ import annotations

import pytest
import torch

from fastngd import NGDiffOptimizer
from fastngd.reference import ReferenceNGDiff
from fastngd.rules import RULES

from .helpers import clone_as, closures, make_net, make_task

TOL = {torch.float32: 2e-5, torch.bfloat16: 3e-2}


def _run_pair(rule: str, dtype: torch.dtype, autolr: bool, steps: int = 7, lr: float = 0.05):
    task = make_task(1)
    base = make_net(2)
    model = clone_as(base, dtype)
    ref_model = clone_as(model, torch.float64)  # start from the same (rounded) values
    theta0 = [p.detach().double().clone() for p in ref_model.parameters()]
    opts = {"c": 0.3} if rule == "gdiff" else {}
    opt = NGDiffOptimizer(model.parameters(), lr=lr, rule=rule, rule_options=opts,
                          autolr=autolr, autolr_every=3, backend="torch", seed=5)
    ref = ReferenceNGDiff(list(ref_model.parameters()), lr=lr, rule=rule, c=0.3,
                          autolr=autolr, autolr_every=3, seed=5, storage_dtype=dtype)
    cr, cf = closures(model, task)
    rr_, rf_ = closures(ref_model, task)
    for _ in range(steps):
        opt.step(cr, cf)
        for p in ref_model.parameters():
            p.grad = None
        lr_loss = rr_()
        g_r = torch.autograd.grad(lr_loss, list(ref_model.parameters()))
        lf_loss = rf_()
        g_f = torch.autograd.grad(lf_loss, list(ref_model.parameters()))
        with torch.no_grad():
            ref.step(g_r, g_f, lr_loss.item(), lf_loss.item(), probe=lambda: rr_().item())
    disp_opt = torch.cat([(p.detach().double() - t).flatten() for p, t in zip(model.parameters(), theta0)])
    disp_ref = torch.cat([(p.detach() - t).flatten() for p, t in zip(ref_model.parameters(), theta0)])
    return disp_opt, disp_ref, opt, ref


@pytest.mark.parametrize("autolr", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_matches_reference(rule: str, dtype: torch.dtype, autolr: bool) -> None:
    disp_opt, disp_ref, opt, ref = _run_pair(rule, dtype, autolr)
    assert disp_ref.norm() > 1e-3, "the reference did not move: the test would be vacuous"
    rel = (disp_opt - disp_ref).norm() / disp_ref.norm()
    assert rel <= TOL[dtype], f"relative displacement error {rel:.2e}"
    if autolr and dtype == torch.float32:
        assert ref.lr_scale != 1.0, "GeN never accepted a fit: the autolr case would be vacuous"
        assert opt.lr_scale.item() == pytest.approx(ref.lr_scale, rel=1e-3)


def test_reference_detects_a_wrong_rule() -> None:
    """The comparison has teeth: a different rule gives a large error."""
    a, ref_disp, _, _ = _run_pair("ngdiff", torch.float32, False)
    b, _, _, _ = _run_pair("gdiff", torch.float32, False)
    assert (b - ref_disp).norm() / ref_disp.norm() > 0.1

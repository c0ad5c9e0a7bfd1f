"""Differential test: the optimizer against the naive float64 reference over 7 steps, for
every rule × every base, with and without GeN, in float32 and bfloat16."""
from __future__ import annotations

import pytest
import torch

from fastngd import BASES, NGDiffOptimizer
from fastngd.reference import ReferenceNGDiff
from fastngd.rules import RULES

from .helpers import clone_as, closures, make_net, make_task

TOL = {torch.float32: 2e-5, torch.bfloat16: 3e-2}
#: Adam's u = m̂/(√v̂ + ε) divides by small numbers: float32 rounding of d is amplified where
#: v̂ is tiny, so its displacement is compared a little more loosely.
TOL_ADAM = {torch.float32: 2e-4, torch.bfloat16: 5e-2}


def _options(rule: str) -> tuple[dict, dict]:
    """(rule_options for the optimizer, keyword arguments for the reference)."""
    if rule == "gdiff":
        return {"c": 0.3}, {"c": 0.3}
    if rule.startswith("surgery_"):
        opts = {"alpha": 0.7, "gamma": 0.4}
        if rule in ("surgery_pcgrad", "surgery_pcgrad_global", "surgery_blur"):
            opts["eps"] = 1e-10
        return opts, {"rule_options": opts}
    return {}, {}


def _run_pair(rule: str, dtype: torch.dtype, autolr: bool, base: str = "sgd", steps: int = 7,
              lr: float = 0.05):
    task = make_task(1)
    model = clone_as(make_net(2), dtype)
    ref_model = clone_as(model, torch.float64)  # start from the same (rounded) values
    theta0 = [p.detach().double().clone() for p in ref_model.parameters()]
    opts, ref_opts = _options(rule)
    if base in ("adam", "adamw"):
        lr = lr / 10  # Adam's steps are about lr per coordinate
    opt = NGDiffOptimizer(model.parameters(), lr=lr, rule=rule, rule_options=opts, base=base,
                          autolr=autolr, autolr_every=3, backend="torch", seed=5)
    ref = ReferenceNGDiff(list(ref_model.parameters()), lr=lr, rule=rule, base=base,
                          autolr=autolr, autolr_every=3, seed=5, storage_dtype=dtype, **ref_opts)
    cr, cf = closures(model, task)
    rr_, rf_ = closures(ref_model, task)
    for _ in range(steps):
        stats = opt.step(cr, cf)
        lr_loss = rr_()
        g_r = torch.autograd.grad(lr_loss, list(ref_model.parameters()))
        lf_loss = rf_()
        g_f = torch.autograd.grad(lf_loss, list(ref_model.parameters()))
        with torch.no_grad():
            info = ref.step(g_r, g_f, lr_loss.item(), lf_loss.item(), probe=lambda: rr_().item())
    disp_opt = torch.cat([(p.detach().double() - t).flatten()
                          for p, t in zip(model.parameters(), theta0)])
    disp_ref = torch.cat([(p.detach() - t).flatten() for p, t in zip(ref_model.parameters(), theta0)])
    return disp_opt, disp_ref, opt, ref, stats, info


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_matches_reference(rule: str, dtype: torch.dtype, autolr: bool = True) -> None:
    """GeN every 3 calls over 7 steps: GeN steps (calls 0, 3, 6) and fixed steps alike."""
    disp_opt, disp_ref, opt, ref, _, _ = _run_pair(rule, dtype, autolr)
    assert disp_ref.norm() > 1e-3, "the reference did not move: the test would be vacuous"
    rel = (disp_opt - disp_ref).norm() / disp_ref.norm()
    assert rel <= TOL[dtype], f"relative displacement error {rel:.2e}"
    if autolr and dtype == torch.float32:
        assert ref.lr_scale != 1.0, "GeN never accepted a fit: the autolr case would be vacuous"
        assert opt.lr_scale.item() == pytest.approx(ref.lr_scale, rel=1e-3)


@pytest.mark.parametrize("rule", ["ngdiff", "sago", "surgery_pcgrad"])
def test_fixed_learning_rate_matches_reference(rule: str) -> None:
    test_matches_reference(rule, torch.float32, autolr=False)


@pytest.mark.parametrize("base", [b for b in BASES if b != "sgd"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_under_every_base(rule: str, base: str, autolr: bool = True) -> None:
    """Every rule × every base (float32) over 7 steps with GeN along u every 3 calls (so
    fixed steps too); the products g·u of the last step as well."""
    disp_opt, disp_ref, opt, ref, stats, info = _run_pair(rule, torch.float32, autolr, base)
    assert disp_ref.norm() > 1e-4, "the reference did not move: the test would be vacuous"
    rel = (disp_opt - disp_ref).norm() / disp_ref.norm()
    tol = TOL_ADAM if base.startswith("adam") else TOL
    assert rel <= tol[torch.float32], f"relative displacement error {rel:.2e}"
    for key, field in (("retain_dot_update", stats.retain_dot_update),
                       ("forget_dot_update", stats.forget_dot_update)):
        assert field.item() == pytest.approx(info[key], rel=1e-3, abs=1e-6), key
    if autolr:
        assert opt.lr_scale.item() == pytest.approx(ref.lr_scale, rel=1e-3)


def test_reference_detects_a_wrong_rule() -> None:
    """The comparison has teeth: a different rule gives a large error."""
    _, ref_disp, _, _, _, _ = _run_pair("ngdiff", torch.float32, False)
    b, _, _, _, _, _ = _run_pair("gdiff", torch.float32, False)
    assert (b - ref_disp).norm() / ref_disp.norm() > 0.1


def test_reference_detects_a_wrong_base() -> None:
    """... and so does a different base."""
    _, ref_disp, _, _, _, _ = _run_pair("ngdiff", torch.float32, False, "adam")
    b, _, _, _, _, _ = _run_pair("ngdiff", torch.float32, False, "adamw")
    a, _, _, _, _, _ = _run_pair("ngdiff", torch.float32, False, "momentum")
    assert (b - ref_disp).norm() / ref_disp.norm() > 1e-3
    assert (a - ref_disp).norm() / ref_disp.norm() > 0.1

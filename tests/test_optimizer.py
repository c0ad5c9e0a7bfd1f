"""NGDiffOptimizer: API contract, bad input, skipped steps, state_dict, Theorem 5."""
from __future__ import annotations

import copy
import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fastngd import NGDiffOptimizer

from .helpers import closures, make_net, make_task


def _setup(rule="ngdiff", dtype=torch.float32, **kw):
    model = make_net(0, dtype)
    task = make_task(0)
    opt = NGDiffOptimizer(model.parameters(), lr=0.05, rule=rule, backend="torch", **kw)
    return model, opt, *closures(model, task)


def _snapshot(model):
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _same_state(saved: dict, now: dict) -> bool:
    """The per-parameter state of two ``state_dict()``s: same keys, dtypes and bits."""
    return saved.keys() == now.keys() and all(
        entries.keys() == now[pid].keys()
        and all(v.dtype == now[pid][k].dtype and torch.equal(v, now[pid][k])
                for k, v in entries.items())
        for pid, entries in saved.items())


def test_step_moves_losses_the_right_way_and_clears_grads() -> None:
    model, opt, cr, cf = _setup(autolr=True, autolr_every=2)
    l_r0, l_f0 = cr().item(), cf().item()
    for _ in range(20):
        stats = opt.step(cr, cf)
    assert cr().item() < l_r0 and cf().item() > l_f0
    assert all(p.grad is None for p in model.parameters())
    assert not any("retain_grad" in s for s in opt.state.values())
    assert opt.num_steps.item() == 20
    d = stats.as_dict()
    assert set(d) >= {"loss_retain", "loss_forget", "norm_retain", "norm_forget", "cosine",
                      "weight_retain", "weight_forget", "lr", "lr_updated", "skipped"}
    assert d["skip_reason"] == ""


def test_stats_stay_on_the_parameters_device() -> None:
    _, opt, cr, cf = _setup()
    stats = opt.step(cr, cf)
    assert all(t.device.type == "cpu" and t.dim() == 0 for t in
               (stats.loss_retain, stats.norm_forget, stats.cosine, stats.lr, stats.skipped))


def test_per_group_learning_rates() -> None:
    model = make_net(0)
    cr, cf = closures(model, make_task(0))
    before = _snapshot(model)
    opt = NGDiffOptimizer([{"params": model.fc1.parameters(), "lr": 0.1},
                           {"params": model.fc2.parameters(), "lr": 1e-9}],
                          autolr=False, backend="torch")
    opt.step(cr, cf)
    after = _snapshot(model)
    moved = [float((a - b).abs().max()) for a, b in zip(after, before)]
    assert moved[0] > 1e-4 and moved[2] < 1e-8


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("where", ["retain", "forget"])
def test_nonfinite_loss_skips_the_step_exactly(bad: float, where: str) -> None:
    model, opt, cr, cf = _setup(autolr=True, autolr_every=1)
    opt.step(cr, cf)
    before, sd = _snapshot(model), copy.deepcopy(opt.state_dict())

    def poisoned(f):
        return lambda: f() * bad

    stats = opt.step(poisoned(cr) if where == "retain" else cr,
                     poisoned(cf) if where == "forget" else cf)
    assert stats.skipped.item()
    assert ("retain loss" if where == "retain" else "forget loss") in stats.skip_reason
    assert _same(_snapshot(model), before)
    assert torch.equal(opt.lr_scale, sd["ngdiff"]["lr_scale"])
    assert opt.num_steps.item() == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_nan_gradient_skips_without_touching_parameters() -> None:
    model, opt, cr, cf = _setup(autolr=False)
    before = _snapshot(model)
    hook = model.fc2.weight.register_hook(lambda g: g * float("nan"))
    stats = opt.step(cr, cf)
    hook.remove()
    assert stats.skipped.item() and "gradient" in stats.skip_reason
    assert _same(_snapshot(model), before)


def test_frozen_parameters_and_none_grads() -> None:
    model = make_net(0)
    model.fc1.bias.requires_grad_(False)
    extra = nn.Parameter(torch.ones(3))  # never used by the losses: grad stays None
    cr, cf = closures(model, make_task(0))
    opt = NGDiffOptimizer(list(model.parameters()) + [extra], lr=0.05, autolr=False,
                          backend="torch")
    frozen, extra0 = model.fc1.bias.detach().clone(), extra.detach().clone()
    opt.step(cr, cf)
    assert torch.equal(model.fc1.bias, frozen) and torch.equal(extra.detach(), extra0)


def test_parameter_used_by_one_task_only() -> None:
    lin = nn.Linear(2, 1)
    head = nn.Parameter(torch.tensor([0.5]))  # only in the forget loss
    x = torch.ones(4, 2)
    opt = NGDiffOptimizer([*lin.parameters(), head], lr=0.1, autolr=False, backend="torch")
    h0 = head.detach().clone()
    opt.step(lambda: lin(x).pow(2).mean(), lambda: (lin(x) * head).mean())
    assert not torch.equal(head.detach(), h0)


def test_mixed_dtypes() -> None:
    a = nn.Linear(3, 3).to(torch.bfloat16)
    b = nn.Linear(3, 1)
    x = torch.randn(5, 3)

    def out():
        return b(a(x.bfloat16()).float())

    opt = NGDiffOptimizer([*a.parameters(), *b.parameters()], lr=0.05, autolr=True,
                          autolr_every=1, backend="torch")
    w0 = a.weight.detach().clone()
    stats = opt.step(lambda: out().pow(2).mean(), lambda: (out() - 1).abs().mean())
    assert not stats.skipped.item()
    assert a.weight.dtype == torch.bfloat16 and not torch.equal(a.weight, w0)


def test_bad_closures() -> None:
    model, opt, cr, cf = _setup(autolr=False)
    before = _snapshot(model)
    with pytest.raises(ValueError, match="scalar"):
        opt.step(lambda: model(torch.randn(2, 6)), cf)
    with pytest.raises(TypeError, match="torch.Tensor"):
        opt.step(lambda: 1.0, cf)
    with pytest.raises(ValueError, match="does not depend"):
        opt.step(lambda: torch.tensor(1.0), cf)
    with pytest.raises(KeyError):
        opt.step(cr, lambda: {}["missing"])
    with pytest.raises(ValueError, match="both"):
        opt.step(cr, None)
    assert _same(_snapshot(model), before)
    assert all(p.grad is None for p in model.parameters())
    assert not any("retain_grad" in s for s in opt.state.values())
    opt.step(cr, cf)  # still usable


def test_bad_constructor_arguments() -> None:
    p = [nn.Parameter(torch.ones(2))]
    with pytest.raises(ValueError, match="empty"):
        NGDiffOptimizer([])
    with pytest.raises(ValueError, match="valid rules"):
        NGDiffOptimizer(p, rule="adam")
    with pytest.raises(ValueError, match="lr"):
        NGDiffOptimizer(p, lr=-1.0)
    with pytest.raises(ValueError, match="backend"):
        NGDiffOptimizer(p, backend="cuda-magic")
    with pytest.raises(ValueError, match="retain_storage"):
        NGDiffOptimizer(p, retain_storage="fp4")
    with pytest.raises(ValueError, match="c"):
        NGDiffOptimizer(p, rule="gdiff", rule_options={"c": 1.5})
    with pytest.raises(TypeError):
        NGDiffOptimizer(p, rule="ngdiff", rule_options={"c": 0.5})
    with pytest.raises(ValueError, match="autolr_every"):
        NGDiffOptimizer(p, autolr_every=0)


def test_sparse_gradients_are_refused() -> None:
    emb = nn.Embedding(10, 3, sparse=True)
    idx = torch.tensor([1, 2])
    opt = NGDiffOptimizer(emb.parameters(), autolr=False, backend="torch")
    with pytest.raises(TypeError, match="sparse"):
        opt.step(lambda: emb(idx).sum(), lambda: emb(idx).pow(2).sum())


def test_low_level_path_with_gradient_accumulation() -> None:
    """Accumulated micro-batch gradients give the same step as the closure API."""
    xr, yr, xf, yf = make_task(0)
    ref_model, model = make_net(0), make_net(0)
    ref_opt = NGDiffOptimizer(ref_model.parameters(), lr=0.05, backend="torch", autolr=False)
    cr, cf = closures(ref_model, (xr, yr, xf, yf))
    ref_opt.step(cr, cf)

    opt = NGDiffOptimizer(model.parameters(), lr=0.05, backend="torch", autolr=False)
    ce = nn.functional.cross_entropy
    for chunk in (slice(0, 24), slice(24, 48)):
        (ce(model(xr[chunk]), yr[chunk]) / 2).backward()
    opt.stash_retain_grad()
    for chunk in (slice(0, 8), slice(8, 16)):
        (ce(model(xf[chunk]), yf[chunk]) / 2).backward()
    opt.step()
    for a, b in zip(model.parameters(), ref_model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_low_level_step_without_one_task_is_refused() -> None:
    """``backward(); step()`` with nothing stashed would go along −g_F alone, and a stash with
    no forget backward along g_R alone: both are errors, the parameters untouched, except for
    the rules that weigh that task by 0 (``ga``: no g_R; ``gd``: no g_F)."""
    xr, yr, xf, yf = make_task(0)
    ce = nn.functional.cross_entropy
    for rule, retain, forget, error in [("ngdiff", False, True, "no retain gradient"),
                                        ("ngdiff", True, False, "no forget gradient"),
                                        ("gdiff", False, True, "no retain gradient"),
                                        ("ga", False, True, None), ("gd", True, False, None)]:
        model = make_net(0)
        opt = NGDiffOptimizer(model.parameters(), lr=0.05, rule=rule, backend="torch",
                              autolr=False)
        before = _snapshot(model)
        if retain:
            ce(model(xr), yr).backward()
            opt.stash_retain_grad()
        if forget:
            ce(model(xf), yf).backward()
        if error is None:
            opt.step()
            assert not _same(_snapshot(model), before)
            continue
        with pytest.raises(ValueError, match=error):
            opt.step()
        assert _same(_snapshot(model), before)
        assert all(p.grad is None for p in model.parameters())
        ce(model(xr), yr).backward()      # the optimizer is usable afterwards
        opt.stash_retain_grad()
        ce(model(xf), yf).backward()
        opt.step()


def test_step_hooks_run_once_around_every_kind_of_step() -> None:
    """The step pre- and post-hooks run once per step, whether it is made with closures,
    by ``step()`` on the caller's gradients or by ``step_from_grads()``."""
    _, opt, cr, cf = _setup(autolr=False)
    calls = []
    opt.register_step_pre_hook(lambda *_: calls.append("pre"))
    opt.register_step_post_hook(lambda *_: calls.append("post"))
    opt.step(cr, cf)
    for finish in (opt.step, opt.step_from_grads):
        cr().backward()
        opt.stash_retain_grad()
        cf().backward()
        finish()
    assert calls == ["pre", "post"] * 3


def test_step_hooks_run_once_in_a_subclass_that_calls_step() -> None:
    """A subclass's ``step`` that calls ``super().step`` (as the HF Trainer's optimizer does)
    runs the hooks once per update, however many instances of either class exist, and a
    call of it that makes no update runs none."""
    class Remembering(NGDiffOptimizer):
        def step(self, closure_retain=None, closure_forget=None):  # type: ignore[override]
            if closure_retain is None and self.last is not None:
                return self.last                      # no update: the step made before
            self.last = super().step(closure_retain, closure_forget)
            return self.last

    _setup(autolr=False)                               # a plain instance first: order matters
    model = make_net(0)
    opt = Remembering(model.parameters(), lr=0.05, backend="torch", autolr=False)
    opt.last = None
    cr, cf = closures(model, make_task(0))
    calls = []
    opt.register_step_post_hook(lambda *_: calls.append("post"))
    opt.step(cr, cf)
    opt.step()
    assert calls == ["post"]
    cr().backward()
    opt.stash_retain_grad()
    cf().backward()
    opt.step_from_grads()
    assert calls == ["post"] * 2


def test_low_level_autolr_needs_the_closure() -> None:
    _, opt, cr, cf = _setup(autolr=True)
    cr().backward()
    opt.stash_retain_grad()
    cf().backward()
    with pytest.raises(ValueError, match="closure_retain"):
        opt.step()


def test_double_stash_is_refused() -> None:
    _, opt, cr, _ = _setup(autolr=False)
    cr().backward()
    opt.stash_retain_grad()
    cr().backward()
    with pytest.raises(RuntimeError, match="already stashed"):
        opt.stash_retain_grad()


@pytest.mark.parametrize("rule", ["ngdiff", "rlw"])
def test_state_dict_resume_is_bit_identical(rule: str) -> None:
    _resume("sgd", True, "exact", rule=rule)


def test_load_state_dict_checks_the_rule() -> None:
    _, opt, cr, cf = _setup(rule="ngdiff")
    opt.step(cr, cf)
    model = make_net(0)
    other = NGDiffOptimizer(model.parameters(), rule="mgda", backend="torch")
    with pytest.raises(ValueError, match="rule"):
        other.load_state_dict(opt.state_dict())


@pytest.mark.parametrize("rule", ["ngdiff", "imtlg", "pcgrad", "mgda"])
@given(seed=st.integers(0, 10_000))
def test_theorem5_small_steps_never_hurt_either_task(rule: str, seed: int) -> None:
    """Theorem 5: for small η, L_R does not rise and L_F does not fall (float64)."""
    model = make_net(seed % 97, torch.float64)
    cr, cf = closures(model, make_task(seed))
    with torch.no_grad():
        l_r0, l_f0 = cr().item(), cf().item()
    opt = NGDiffOptimizer(model.parameters(), lr=1e-6, rule=rule, autolr=False,
                          backend="torch")
    opt.step(cr, cf)
    with torch.no_grad():
        l_r1, l_f1 = cr().item(), cf().item()
    assert l_r1 <= l_r0 + 1e-11
    assert l_f1 >= l_f0 - 1e-11


def test_gdiff_can_hurt_the_retain_loss() -> None:
    """The counterpart of Theorem 5: GDiff with a dominant forget gradient raises L_R."""
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0]]))
    x_r, x_f = torch.tensor([[1.0, 0.0]]), torch.tensor([[10.0, 10.0]])
    cr = lambda: (lin(x_r) - 0.5).pow(2).sum()
    cf = lambda: lin(x_f).pow(2).sum()
    l0 = cr().item()
    NGDiffOptimizer(lin.parameters(), lr=1e-4, rule="gdiff", autolr=False,
                    backend="torch").step(cr, cf)
    assert cr().item() > l0


# ---------------------------------------------------------------------------- bad input
def test_a_closure_that_misses_the_parameters_is_an_error() -> None:
    """A closure whose loss reaches none of the optimizer's parameters (another model, or a
    tensor outside the optimizer) raises instead of giving that task weight 0."""
    model, opt, cr, cf = _setup(autolr=False)
    other = make_net(1)
    x = torch.randn(4, 6)
    outside = nn.Parameter(torch.ones(()))
    before = _snapshot(model)
    with pytest.raises(ValueError, match="any parameter of this optimizer"):
        opt.step(lambda: other(x).pow(2).mean(), cf)
    with pytest.raises(ValueError, match="closure_forget.*any parameter of this optimizer"):
        opt.step(cr, lambda: outside * 2.0)
    assert _same(_snapshot(model), before)
    assert all(p.grad is None for p in model.parameters())
    assert not any("retain_grad" in s for s in opt.state.values())
    opt.step(cr, cf)  # still usable


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), 0.0, -0.1, True])
def test_group_learning_rates_are_checked_at_construction(bad) -> None:
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="lr"):
        NGDiffOptimizer([{"params": [a]}, {"params": [b], "lr": bad}])
    if not isinstance(bad, bool):  # the same value as a tensor
        with pytest.raises(ValueError, match="lr"):
            NGDiffOptimizer([a], lr=torch.tensor(bad, dtype=torch.float64))


def test_learning_rates_as_numpy_numbers_or_tensors_are_floats() -> None:
    """As torch's optimizers take them; kept as floats. Other tensors are refused."""
    import numpy as np

    a, b, c = (nn.Parameter(torch.ones(2)) for _ in range(3))
    opt = NGDiffOptimizer([{"params": [a], "lr": np.float32(0.25)},
                           {"params": [b], "lr": torch.tensor(0.5)}], lr=torch.tensor([0.125]))
    opt.add_param_group({"params": [c], "lr": np.int64(2)})
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.5, 2.0]
    assert all(type(g["lr"]) is float for g in opt.param_groups)
    assert opt.defaults["lr"] == 0.125
    for bad in (torch.tensor([0.1, 0.2]), torch.tensor(1), torch.tensor(True), "0.1"):
        with pytest.raises(ValueError, match="lr must be a finite positive number"):
            NGDiffOptimizer([nn.Parameter(torch.ones(1))], lr=bad)


@pytest.mark.parametrize("base", ["sgd", "adamw"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_learning_rate_later_skips_the_step(bad: float, base: str) -> None:
    """A scheduler or a user sets a group's lr to NaN/inf: the step is skipped, with its
    reason, and nothing changes (parameters, the base's state)."""
    model, opt, cr, cf = _setup(base=base, autolr=False)
    opt.step(cr, cf)
    before, sd = _snapshot(model), copy.deepcopy(opt.state_dict())
    opt.param_groups[0]["lr"] = bad
    stats = opt.step(cr, cf)
    assert stats.skipped.item() and "learning rate" in stats.skip_reason
    assert _same(_snapshot(model), before)
    assert _same_state(sd["state"], opt.state_dict()["state"])
    assert stats.lr.item() == 0.0
    opt.param_groups[0]["lr"] = 0.05
    assert not opt.step(cr, cf).skipped.item()


def test_a_zero_group_learning_rate_advances_the_state_like_torch() -> None:
    """lr = 0 (a warm-up schedule's first step): θ stays, Adam's moments and step advance."""
    p = nn.Parameter(torch.randn(4))
    twin = nn.Parameter(p.detach().clone())
    opt = NGDiffOptimizer([p], lr=0.1, rule="gd", base="adam", autolr=False, backend="torch")
    ref = torch.optim.Adam([twin], lr=0.1)
    opt.param_groups[0]["lr"] = 0.0
    ref.param_groups[0]["lr"] = 0.0
    g = torch.randn(4)
    p.grad = g.clone()
    opt.stash_retain_grad()
    opt.step()
    twin.grad = g.clone()
    ref.step()
    assert torch.equal(p.detach(), twin.detach())
    assert torch.allclose(opt.state[p]["exp_avg"], ref.state[twin]["exp_avg"])
    assert opt.state[p]["step"].item() == ref.state[twin]["step"].item() == 1.0


def test_empty_groups_and_duplicates() -> None:
    model = make_net(0)
    opt = NGDiffOptimizer([{"params": []}, {"params": list(model.parameters())}], autolr=False,
                          backend="torch")
    cr, cf = closures(model, make_task(0))
    assert not opt.step(cr, cf).skipped.item()
    with pytest.raises(ValueError, match="no parameters"):
        NGDiffOptimizer([{"params": []}])
    w = model.fc1.weight
    with pytest.raises(ValueError, match="more than once"):
        NGDiffOptimizer([w, w])
    with pytest.raises(ValueError, match="more than one"):
        NGDiffOptimizer([{"params": [w]}, {"params": [w, model.fc1.bias]}])


def test_gdiff_default_c_is_explicit() -> None:
    p = [nn.Parameter(torch.ones(2))]
    assert NGDiffOptimizer(p, rule="gdiff").rule.name == "gdiff-0.5"
    # a checkpoint of a "gdiff" optimizer made before the name said its c still loads
    a = NGDiffOptimizer(p, rule="gdiff", rule_options={"c": 0.5})
    sd = a.state_dict()
    sd["ngdiff"]["rule"] = "gdiff"
    NGDiffOptimizer(p, rule="gdiff").load_state_dict(sd)


# ---------------------------------------------------------------------------- bases
@pytest.mark.parametrize("base", ["sgd", "momentum", "adam", "adamw"])
def test_nan_anywhere_leaves_the_base_state_untouched(base: str) -> None:
    model, opt, cr, cf = _setup(base=base, autolr=True, autolr_every=2)
    opt.step(cr, cf)
    opt.step(cr, cf)
    before, sd = _snapshot(model), copy.deepcopy(opt.state_dict())
    hook = model.fc2.weight.register_hook(lambda g: g * float("nan"))
    stats = opt.step(cr, cf)  # a GeN step (call 2)
    hook.remove()
    assert stats.skipped.item() and stats.probe_losses is not None
    assert _same(_snapshot(model), before)
    assert _same_state(sd["state"], opt.state_dict()["state"])
    assert opt.num_steps.item() == 2


def _resume(base: str, autolr: bool, storage: str, dtype=torch.float32, rule="ngdiff") -> None:
    """Save after 3 steps, run 4 more; a fresh model and optimizer loaded from the save and
    run 4 steps end bit-identical (parameters and the base's state)."""
    kw = {"base": base, "autolr": autolr, "autolr_every": 2, "retain_storage": storage,
          "dtype": dtype, "rule": rule}
    model, opt, cr, cf = _setup(**kw)
    for _ in range(3):
        opt.step(cr, cf)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    for _ in range(4):
        opt.step(cr, cf)
    expected, state = _snapshot(model), opt.state_dict()["state"]

    buf.seek(0)
    ckpt = torch.load(buf, weights_only=False)
    model2 = make_net(1, dtype)
    model2.load_state_dict(ckpt["model"])
    opt2 = NGDiffOptimizer(model2.parameters(), lr=0.05, backend="torch",
                           **{k: v for k, v in kw.items() if k != "dtype"})
    opt2.load_state_dict(ckpt["opt"])
    cr2, cf2 = closures(model2, make_task(0))
    for _ in range(4):
        opt2.step(cr2, cf2)
    assert _same(_snapshot(model2), expected)
    assert _same_state(state, opt2.state_dict()["state"])


@pytest.mark.parametrize("storage", ["exact", "int8"])
@pytest.mark.parametrize("autolr", [False, True])
@pytest.mark.parametrize("base", ["momentum", "adam", "adamw"])
def test_resume_is_bit_identical_for_every_base(base: str, autolr: bool, storage: str) -> None:
    _resume(base, autolr, storage)


@given(base=st.sampled_from(["sgd", "momentum", "adam", "adamw"]),
       rule=st.sampled_from(["ngdiff", "rlw", "sago"]),
       step_size=st.sampled_from(["fixed", "gen", "gen-guard"]),
       storage=st.sampled_from(["exact", "int8"]), before=st.integers(0, 3),
       how=st.sampled_from(["deepcopy", "pickle"]))
@settings(max_examples=25, deadline=None)
def test_a_copied_optimizer_steps_on_as_the_original(base, rule, step_size, storage, before,
                                                     how) -> None:
    """``copy.deepcopy`` or a pickle round trip (``torch.save`` of the model and optimizer
    together) after some steps: the copy's next steps give the original's parameters and
    state bit for bit, and it keeps its hooks out (as ``torch.optim.Optimizer`` does)."""
    model, opt, cr, cf = _setup(rule, base=base, step_size=step_size, autolr_every=2,
                                retain_storage=storage)
    for _ in range(before):
        opt.step(cr, cf)
    opt.register_step_post_hook(lambda *_: None)
    if how == "deepcopy":
        model2, opt2 = copy.deepcopy((model, opt))
    else:
        buf = io.BytesIO()
        torch.save((model, opt), buf)
        buf.seek(0)
        model2, opt2 = torch.load(buf, weights_only=False)
    assert not opt2._optimizer_step_post_hooks
    cr2, cf2 = closures(model2, make_task(0))
    for _ in range(3):
        s1, s2 = opt.step(cr, cf), opt2.step(cr2, cf2)
        assert torch.equal(s1.lr_scale, s2.lr_scale)
    assert _same(_snapshot(model2), _snapshot(model))
    assert _same_state(opt.state_dict()["state"], opt2.state_dict()["state"])
    assert torch.equal(opt2.num_steps, opt.num_steps)


def test_resume_keeps_float32_moments_of_bf16_parameters() -> None:
    """``Optimizer.load_state_dict`` would cast the moments to bf16; they stay float32."""
    _resume("adamw", True, "exact", torch.bfloat16)


def test_load_state_dict_checks_the_base() -> None:
    _, opt, cr, cf = _setup(base="adam")
    opt.step(cr, cf)
    other = NGDiffOptimizer(make_net(0).parameters(), base="adamw", backend="torch")
    with pytest.raises(ValueError, match="base"):
        other.load_state_dict(opt.state_dict())


def test_stats_report_the_update_products() -> None:
    _, opt, cr, cf = _setup(base="adam", autolr=False)
    d = opt.step(cr, cf).as_dict()
    assert {"retain_dot_update", "forget_dot_update", "gen_outcome", "gen_report"} <= set(d)
    assert d["retain_dot_update"] != 0.0 and d["gen_report"].startswith("no probe")

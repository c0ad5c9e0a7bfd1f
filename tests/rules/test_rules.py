"""Every combine rule on Gram scalars alone: the formula (against the float64 reference), the
shapes of global and per-tensor Gram tensors, zero norms, and the rule table's Lemma-4 rows."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastngd.reference import reference_weights
from fastngd.rules import RULES, get_rule

LINEAR = sorted(name for name, rule in RULES.items() if rule.mode == "linear")
OWN = [n for n in LINEAR if not n.startswith("surgery_")]


@st.composite
def grams(draw, scale: bool = True):
    """``[rr, ff, rf]`` of a real pair of gradients (|rf| ≤ √(rr·ff)), over many scales."""
    k_r = draw(st.integers(-30, 30)) if scale else 0
    k_f = draw(st.integers(-30, 30)) if scale else 0
    rr = (draw(st.floats(0.0, 10.0)) * 10.0**k_r) ** 2
    ff = (draw(st.floats(0.0, 10.0)) * 10.0**k_f) ** 2
    cos = draw(st.sampled_from([-1.0, 1.0, 0.0, draw(st.floats(-1.0, 1.0))]))
    return torch.tensor([rr, ff, cos * math.sqrt(rr) * math.sqrt(ff)], dtype=torch.float64)


def _weights(rule: str, gram: torch.Tensor, losses=(1.5, 2.5), noise=(0.3, -0.2), **opts):
    r = get_rule(rule, **opts)
    return r.weights(gram, torch.tensor(losses, dtype=torch.float64),
                     torch.tensor(noise, dtype=torch.float64))


@pytest.mark.parametrize("rule", OWN)
@given(gram=grams())
def test_matches_the_reference_formula(rule: str, gram: torch.Tensor) -> None:
    rr, ff, rf = gram.tolist()
    expected = reference_weights(rule, rr, ff, rf, 1.5, 2.5, (0.3, -0.2))
    got = _weights(rule, gram)
    assert got.shape == (2,) and bool(torch.isfinite(got).all())
    for g, e in zip(got.tolist(), expected):
        assert g == pytest.approx(e, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_per_tensor_rows_give_row_by_row_weights(rule: str) -> None:
    rows = torch.tensor([[4.0, 1.0, 1.5], [0.0, 2.0, 0.0], [9.0, 16.0, -11.0]], dtype=torch.float64)
    stacked = _weights(rule, rows)
    assert stacked.shape == (3, 2)
    for i in range(3):
        assert torch.equal(stacked[i], _weights(rule, rows[i]))


@pytest.mark.parametrize("rule", sorted(RULES))
def test_zero_gradients_never_give_nan(rule: str) -> None:
    for gram in ([0.0, 0.0, 0.0], [0.0, 4.0, 0.0], [4.0, 0.0, 0.0]):
        w = _weights(rule, torch.tensor(gram, dtype=torch.float64), losses=(0.0, 0.0))
        assert bool(torch.isfinite(w).all()), (rule, gram, w)


@pytest.mark.parametrize("rule", LINEAR)
@given(gram=grams())
def test_lemma4_rows_of_the_rule_table(rule: str, gram: torch.Tensor) -> None:
    """For a linear rule, ``g_R·d = w_R·rr − w_F·rf`` and ``g_F·d = w_R·rf − w_F·ff``: the
    sides the table claims hold for every Gram (up to float64 rounding)."""
    rr, ff, rf = gram.tolist()
    w_r, w_f = _weights(rule, gram).tolist()
    slack = 1e-12 * (abs(w_r) * (rr + abs(rf)) + abs(w_f) * (ff + abs(rf))) + 1e-300
    if rule == "mgda":  # 1 − γ carries an absolute rounding error of a few ulps of 1
        slack += 1e-15 * (rr + ff + abs(rf))
    if RULES[rule].retain_safe:
        assert w_r * rr - w_f * rf >= -slack
    if RULES[rule].forget_safe:
        assert w_r * rf - w_f * ff <= slack


@pytest.mark.parametrize("rule", [n for n in LINEAR if not RULES[n].retain_safe])
def test_retain_side_counterexample(rule: str) -> None:
    """Each linear rule the table does not mark retain-safe has a Gram where g_R·d < 0."""
    found = []
    for rr, ff, rf in [(1.0, 200.0, 10.0), (1e-12, 1.0, 1e-6), (1.0, 1.0, 0.9), (1e-20, 1.0, 1e-10)]:
        for noise in ((0.3, -0.2), (-3.0, 3.0)):
            w_r, w_f = _weights(rule, torch.tensor([rr, ff, rf], dtype=torch.float64),
                                losses=(1.0, 100.0), noise=noise).tolist()
            found.append(w_r * rr - w_f * rf < 0)
    assert any(found)


@pytest.mark.parametrize("rule", [n for n in LINEAR if not RULES[n].forget_safe])
def test_forget_side_counterexample(rule: str) -> None:
    found = []
    for rr, ff, rf in [(200.0, 1.0, 10.0), (1.0, 1e-12, 1e-6), (1.0, 1.0, 0.9), (1.0, 1e-20, 1e-10)]:
        for noise in ((0.3, -0.2), (3.0, -3.0)):
            w_r, w_f = _weights(rule, torch.tensor([rr, ff, rf], dtype=torch.float64),
                                losses=(100.0, 1.0), noise=noise).tolist()
            found.append(w_r * rf - w_f * ff > 0)
    assert any(found)


def test_fixed_values() -> None:
    g = torch.tensor([4.0, 9.0, 3.0], dtype=torch.float64)  # ‖g_R‖ = 2, ‖g_F‖ = 3, rf = 3
    assert _weights("ngdiff", g).tolist() == [0.5, 1 / 3]
    assert _weights("imtlg", g).tolist() == pytest.approx([0.6, 0.4])
    assert _weights("pcgrad", g).tolist() == pytest.approx([1 + 3 / 4, 1 + 3 / 9])
    assert _weights("pcgrad_retain", g).tolist() == pytest.approx([0.5 + (1 / 3) * 3 / 4, 1 / 3])
    assert _weights("mgda", g).tolist() == pytest.approx([12 / 19, 7 / 19])
    assert _weights("lossnorm", g).tolist() == pytest.approx([1 / 1.5, 1 / 2.5])
    assert _weights("gdiff", g, c=0.3).tolist() == pytest.approx([0.3, 0.7])
    w = _weights("rlw", g).tolist()
    assert w == pytest.approx([math.exp(0.3) / (math.exp(0.3) + math.exp(-0.2)),
                               math.exp(-0.2) / (math.exp(0.3) + math.exp(-0.2))])


@given(gram=grams())
def test_imtlg_and_pcgrad_retain_stay_finite_at_any_scale(gram: torch.Tensor) -> None:
    """Normalised rules formed without sums or products of norms that could overflow."""
    for rule in ("imtlg", "pcgrad_retain", "ngdiff", "sago", "mgda", "pcgrad"):
        assert bool(torch.isfinite(_weights(rule, gram)).all()), rule

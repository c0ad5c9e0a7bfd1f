"""The SAGO authors' strategies: the optimizer's direction against a float64 transcription of
their published code (``fastngd.reference.surgery_direction``), and the ε counterexamples of
the rule table."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastngd.reference import surgery_direction

from ..helpers import applied_direction

STRATEGIES = ["sago", "sago_prefer_retain", "pcgrad", "pcgrad_global", "blur"]
SHAPES = [(3,), (2, 3), (1,), (5,), (0,)]


@st.composite
def gradients(draw):
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=4))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    s_r, s_f = (10.0 ** draw(st.integers(-6, 6)) for _ in range(2))
    g_r = [s_r * torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    g_f = [s_f * torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    if draw(st.booleans()):  # strongly aligned tasks: every projection branch is taken
        g_f = [s_f / s_r * r + 0.01 * f for r, f in zip(g_r, g_f)]
    return g_r, g_f


@pytest.mark.parametrize("strategy", STRATEGIES)
@given(data=gradients(), alpha=st.sampled_from([1.0, 0.3]), gamma=st.sampled_from([1.0, 2.5]),
       eps=st.sampled_from([1e-10, 0.0, 1.0]))
def test_matches_the_authors_formulas(strategy: str, data, alpha: float, gamma: float,
                                      eps: float) -> None:
    g_r, g_f = data
    opts = {"alpha": alpha, "gamma": gamma}
    if strategy in ("pcgrad", "pcgrad_global", "blur"):
        opts["eps"] = eps
    d, stats = applied_direction(f"surgery_{strategy}", g_r, g_f, rule_options=opts)
    expected = surgery_direction(strategy, g_r, g_f, **opts)
    assert not stats.skipped.item()
    # the direction is a difference of terms of size ~α‖g_R‖ and ~γ‖g_F‖ (projections
    # included, by Cauchy–Schwarz): float64 rounding is relative to them
    size = max([alpha * float(r.abs().max()) + gamma * float(f.abs().max())
                for r, f in zip(g_r, g_f) if r.numel()] or [0.0])
    for got, want in zip(d, expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-13 * size + 1e-300)


def test_transcription_fixed_values() -> None:
    """The transcription itself on hand-computed values (h = −g_F is their gradient)."""
    r = [torch.tensor([1.0, -2.0, 3.0, 0.0], dtype=torch.float64)]
    f = [torch.tensor([2.0, 1.0, -1.0, 5.0], dtype=torch.float64)]  # h = [-2, -1, 1, -5]
    # conflicts (sign(h)·sign(r) < 0): coordinate 0 only
    assert surgery_direction("sago", r, f)[0].tolist() == [1.0, -1.0, 1.0, -5.0]
    assert surgery_direction("sago_prefer_retain", r, f)[0].tolist() == [1.0, -3.0, 4.0, -5.0]
    # h·r = -2 + 2 + 3 = 3 ≥ 0: no projection; d = h + r
    assert surgery_direction("pcgrad", r, f)[0].tolist() == [-1.0, -3.0, 4.0, -5.0]
    # blur: r·h = 3, ‖h‖² = 31: r − (3/31)h, plus h
    blur = surgery_direction("blur", r, f, eps=0.0)[0]
    h = -f[0]
    torch.testing.assert_close(blur, h + r[0] - 3 / 31 * h)


def test_authors_eps_breaks_the_retain_side_of_pcgrad() -> None:
    """A tensor whose ‖g_R‖² is small against ε: with ε the projected step ascends L_R; with
    ε = 0 it does not (the rule table marks the ε = 0 variant retain-safe)."""
    r, f = [torch.tensor([1e-6], dtype=torch.float64)], [torch.tensor([1.0], dtype=torch.float64)]
    for rule in ("surgery_pcgrad", "surgery_pcgrad_global"):
        d, _ = applied_direction(rule, r, f)
        assert float((r[0] * d[0]).sum()) < 0
        d, _ = applied_direction(rule, r, f, rule_options={"eps": 0.0})
        assert float((r[0] * d[0]).sum()) >= 0


def test_authors_eps_breaks_the_forget_side_of_blur() -> None:
    r, f = [torch.tensor([1.0], dtype=torch.float64)], [torch.tensor([1e-6], dtype=torch.float64)]
    d, _ = applied_direction("surgery_blur", r, f)
    assert float((f[0] * d[0]).sum()) > 0
    d, _ = applied_direction("surgery_blur", r, f, rule_options={"eps": 0.0})
    assert float((f[0] * d[0]).sum()) <= 0


def test_per_tensor_and_global_pcgrad_differ() -> None:
    """Per tensor, each tensor decides its own projection; globally, the sum decides."""
    r = [torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)]
    f = [torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([-3.0], dtype=torch.float64)]
    per, _ = applied_direction("surgery_pcgrad", r, f, rule_options={"eps": 0.0})
    glob, _ = applied_direction("surgery_pcgrad_global", r, f, rule_options={"eps": 0.0})
    assert per[0].tolist() == [1.0, 0.0]  # tensor 0 conflicts and is projected: h ⊥ r
    assert glob[0].tolist() == [0.0, 0.0]  # globally rf = -2 < 0: no projection, d = r − f

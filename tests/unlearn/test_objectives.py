"""Forget objectives against values computed by hand."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastngd.unlearn import get_objective, mean_nll, npo_loss, simnpo_loss


def _log_sigmoid(z: float) -> float:
    return -math.log1p(math.exp(-z))


def test_mean_nll_is_token_mean() -> None:
    nll = torch.tensor([3.0, 1.0])
    n = torch.tensor([2.0, 2.0])
    assert mean_nll(nll, n).item() == pytest.approx(1.0)


def test_mean_nll_refuses_batch_without_targets() -> None:
    with pytest.raises(ValueError, match="no target token"):
        mean_nll(torch.zeros(2), torch.zeros(2))


def test_npo_matches_hand_computation() -> None:
    beta = 0.1
    nll = torch.tensor([5.0, 2.0], dtype=torch.float64)
    ref = torch.tensor([4.0, 3.0], dtype=torch.float64)
    # log pi - log pi_ref = -(nll - ref) = [-1, +1]
    expected = [-(2 / beta) * _log_sigmoid(-beta * d) for d in (-1.0, 1.0)]
    got = npo_loss(nll, ref, beta)
    assert got.item() == pytest.approx(sum(expected) / 2, rel=1e-12)


def test_npo_at_reference_is_two_over_beta_log_two() -> None:
    nll = torch.tensor([7.0, 1.5])
    assert npo_loss(nll, nll.clone(), 0.1).item() == pytest.approx(20 * math.log(2), rel=1e-6)


def test_simnpo_matches_hand_computation() -> None:
    beta, delta = 4.5, 0.5
    nll = torch.tensor([6.0, 1.0], dtype=torch.float64)
    n = torch.tensor([3.0, 2.0], dtype=torch.float64)
    expected = [-(2 / beta) * _log_sigmoid(beta * a / b - delta) for a, b in ((6, 3), (1, 2))]
    assert simnpo_loss(nll, n, beta, delta).item() == pytest.approx(sum(expected) / 2, rel=1e-12)


def test_forget_closure_values_increase_when_forgetting() -> None:
    """Raising the NLL of the forget answers must raise every forget closure value."""
    ref = torch.tensor([2.0, 2.0])
    n = torch.tensor([4.0, 4.0])
    low, high = torch.tensor([2.0, 2.0]), torch.tensor([6.0, 9.0])
    for name in ("ce", "npo", "simnpo"):
        objective = get_objective(name)
        assert objective(high, n, ref).item() > objective(low, n, ref).item(), name


def test_npo_closure_is_minus_npo_loss() -> None:
    nll, ref, n = torch.tensor([3.0]), torch.tensor([2.0]), torch.tensor([2.0])
    value = get_objective("npo", beta=0.2)(nll, n, ref)
    assert value.item() == pytest.approx(-npo_loss(nll, ref, 0.2).item())


def test_objective_errors() -> None:
    with pytest.raises(ValueError, match="valid"):
        get_objective("kl")
    with pytest.raises(ValueError, match="no option"):
        get_objective("ce", beta=1.0)
    with pytest.raises(ValueError, match="beta"):
        get_objective("npo", beta=-1.0)
    with pytest.raises(ValueError, match="reference"):
        get_objective("npo")(torch.ones(1), torch.ones(1), None)


@given(nll=st.lists(st.floats(0.0, 200.0), min_size=1, max_size=8),
       cap=st.floats(0.1, 50.0), data=st.data())
def test_capped_ce_against_a_float64_reference(nll, cap, data) -> None:
    """``Σ min(nll_i, C·n_i) / Σ n_i`` (float64), and no gradient from a capped example."""
    counts = data.draw(st.lists(st.integers(1, 20), min_size=len(nll), max_size=len(nll)))
    want = sum(min(v, cap * c) for v, c in zip(nll, counts)) / sum(counts)
    x = torch.tensor(nll, dtype=torch.float64, requires_grad=True)
    n = torch.tensor(counts, dtype=torch.float64)
    value = get_objective("ce", cap=cap)(x, n)
    assert value.item() == pytest.approx(want, rel=1e-12, abs=1e-12)
    value.backward()
    for v, c, g in zip(nll, counts, x.grad.tolist()):
        if v > cap * c:
            assert g == 0.0
        elif v < cap * c:
            assert g == pytest.approx(1.0 / sum(counts))


def test_ce_without_cap_is_unchanged_and_bad_caps_are_refused() -> None:
    nll, n = torch.tensor([500.0, 1.0]), torch.tensor([2.0, 2.0])
    assert get_objective("ce")(nll, n).item() == pytest.approx(501.0 / 4)
    assert get_objective("ce").describe() == "ce"
    assert get_objective("ce", cap=3.0).describe() == "ce(cap=3)"
    for cap in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="cap"):
            get_objective("ce", cap=cap)
    with pytest.raises(ValueError, match="no option"):
        get_objective("npo", cap=3.0)

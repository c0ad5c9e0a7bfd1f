"""Stopping rules: ForgetLossStop against its definition, and inside unlearn()."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastngd.unlearn import unlearn
from fastngd.unlearn.stopping import ForgetLossStop

from .conftest import make_classifier_data


def _reference_stop(losses: list[float], rise: float, ema: float, min_steps: int) -> int | None:
    """The first 1-based step at which the float reference says stop."""
    s = losses[0]
    for k, loss in enumerate(losses, start=1):
        if k > 1:
            s = ema * s + (1 - ema) * loss
        if k >= min_steps and s >= losses[0] + rise:
            return k
    return None


@given(losses=st.lists(st.floats(0.0, 50.0), min_size=1, max_size=40),
       rise=st.floats(0.01, 20.0), ema=st.floats(0.0, 0.99), min_steps=st.integers(0, 10))
def test_stops_exactly_where_the_definition_says(losses, rise, ema, min_steps) -> None:
    rule = ForgetLossStop(rise=rise, ema=ema, min_steps=min_steps)
    decisions = [rule({"step": k, "loss_forget": v}) for k, v in enumerate(losses, start=1)]
    want = _reference_stop(losses, rise, ema, min_steps)
    first = next((k for k, d in enumerate(decisions, start=1) if d), None)
    assert first == want and rule.stopped_at == want


def test_max_steps_stops_a_run_that_never_rises() -> None:
    rule = ForgetLossStop(rise=1.0, max_steps=3)
    assert [rule({"step": k, "loss_forget": 0.5}) for k in (1, 2, 3)] == [False, False, True]


@pytest.mark.parametrize("kwargs", [{"rise": 0.0}, {"rise": float("nan")}, {"rise": 1.0, "ema": 1.0}])
def test_bad_settings(kwargs) -> None:
    with pytest.raises(ValueError):
        ForgetLossStop(**kwargs)


def test_ends_an_unlearning_run_early() -> None:
    """Gradient ascent raises the forget loss quickly: the run stops at the rule's step,
    long before its epochs are done."""
    model, forget, retain = make_classifier_data()
    rule = ForgetLossStop(rise=0.5, ema=0.0)
    result = unlearn(model, forget, retain, "ngdiff", epochs=50, batch_size=4, lr=0.5,
                     autolr=False, callbacks=[rule])
    assert not result.completed and rule.stopped_at == result.steps
    assert result.history[-1]["loss_forget"] >= result.history[0]["loss_forget"] + 0.5


def test_config_stop_rise_adds_the_rule() -> None:
    """``stop_rise``/``stop_min_steps`` of UnlearnConfig stop a run as the rule would, never
    before ``stop_min_steps``; ``stop_rise=None`` runs every epoch."""
    runs = {}
    for rise, min_steps in ((0.5, 0), (0.5, 40), (None, 0)):
        model, forget, retain = make_classifier_data()
        runs[(rise, min_steps)] = unlearn(model, forget, retain, "ngdiff", epochs=10,
                                          batch_size=4, lr=0.5, autolr=False,
                                          stop_rise=rise, stop_min_steps=min_steps)
    model, forget, retain = make_classifier_data()
    rule = ForgetLossStop(rise=0.5)
    ref = unlearn(model, forget, retain, "ngdiff", epochs=10, batch_size=4, lr=0.5,
                  autolr=False, callbacks=[rule])
    early = runs[(0.5, 0)]
    assert not early.completed and early.steps == ref.steps == rule.stopped_at
    assert runs[(0.5, 40)].steps >= 40 and runs[(0.5, 40)].steps > early.steps
    full = runs[(None, 0)]
    assert full.completed and full.steps > runs[(0.5, 40)].steps

"""Stopping rules: ForgetLossStop and ExampleLossStop against their definitions, and inside
unlearn()."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastngd.errors import UsageError
from fastngd.unlearn import UnlearnConfig, stopping_rule, unlearn
from fastngd.unlearn.stopping import ExampleLossStop, ForgetGapStop, ForgetLossStop

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
                     autolr=False, forget_target="ascent", callbacks=[rule])
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
                                          stop_rise=rise, stop_min_steps=min_steps,
                                          forget_target="ascent", retain_check=None)
    model, forget, retain = make_classifier_data()
    rule = ForgetLossStop(rise=0.5)
    ref = unlearn(model, forget, retain, "ngdiff", epochs=10, batch_size=4, lr=0.5,
                  autolr=False, forget_target="ascent", callbacks=[rule])
    early = runs[(0.5, 0)]
    assert not early.completed and early.steps == ref.steps == rule.stopped_at
    assert runs[(0.5, 40)].steps >= 40 and runs[(0.5, 40)].steps > early.steps
    full = runs[(None, 0)]
    assert full.completed and full.steps > runs[(0.5, 40)].steps


# ---------------------------------------------------------------------- ExampleLossStop


_steps = st.lists(
    st.lists(st.tuples(st.integers(0, 5), st.floats(0.0, 40.0)), min_size=1, max_size=4),
    min_size=1, max_size=30,
)


def _records(steps):
    return [{"step": k, "forget_indices": [i for i, _ in batch],
             "forget_losses": [v for _, v in batch]} for k, batch in enumerate(steps, start=1)]


@given(steps=_steps, rise=st.floats(0.1, 30.0), min_steps=st.integers(0, 10))
def test_with_q0_it_stops_exactly_when_every_seen_example_has_risen(steps, rise, min_steps) -> None:
    """q = 0: never stop while a tracked example is below its first value + rise; stop at
    the first step (≥ min_steps) where none is."""
    rule = ExampleLossStop(rise=rise, min_steps=min_steps)
    first: dict[int, float] = {}
    latest: dict[int, float] = {}
    want = None
    for record in _records(steps):
        for i, v in zip(record["forget_indices"], record["forget_losses"]):
            first.setdefault(i, v)
            latest[i] = v
        every = all(latest[i] - first[i] >= rise for i in first)
        decision = rule(record)
        assert decision == (record["step"] >= min_steps and every)
        if decision and want is None:
            want = record["step"]
    assert rule.stopped_at == want


@given(steps=_steps, rise=st.floats(0.1, 30.0), q=st.floats(0.0, 0.99))
def test_a_quantile_stops_when_its_share_of_examples_has_risen(steps, rise, q) -> None:
    """Against the float64 quantile of the rises (numpy): stop iff it reaches ``rise``."""
    rule = ExampleLossStop(rise=rise, quantile=q)
    first: dict[int, float] = {}
    latest: dict[int, float] = {}
    for record in _records(steps):
        for i, v in zip(record["forget_indices"], record["forget_losses"]):
            first.setdefault(i, v)
            latest[i] = v
        rises = np.array([latest[i] - first[i] for i in sorted(first)], dtype=np.float64)
        level = float(np.quantile(rises, q))
        decision = rule(record)
        if abs(level - rise) > 1e-9:  # away from the boundary, where rounding may differ
            assert decision == (level >= rise)


def test_an_example_that_stays_put_blocks_the_minimum_but_not_a_quantile() -> None:
    rule_min = ExampleLossStop(rise=1.0)
    rule_q = ExampleLossStop(rise=1.0, quantile=0.2)
    for step in range(1, 4):  # ten examples, nine rise by 2 nats a step, number 0 stays
        record = {"step": step, "forget_indices": list(range(10)),
                  "forget_losses": [0.0] + [2.0 * step] * 9}
        stop_min, stop_q = rule_min(record), rule_q(record)
    assert not stop_min and stop_q and rule_q.stopped_at == 2


def test_the_floor_must_fire_too_and_max_steps_ends_it() -> None:
    floor = ForgetLossStop(rise=5.0, ema=0.0)
    rule = ExampleLossStop(rise=1.0, floor=floor, max_steps=6)
    out = []
    for step, mean in enumerate([0.0, 2.0, 4.0, 6.0], start=1):
        out.append(rule({"step": step, "loss_forget": mean, "forget_indices": [0],
                         "forget_losses": [mean]}))
    assert out == [False, False, False, True] and floor.stopped_at == 4
    never = ExampleLossStop(rise=1.0, max_steps=2)
    record = {"step": 1, "forget_indices": [0], "forget_losses": [0.0]}
    assert [never(record), never({**record, "step": 2})] == [False, True]


def test_non_finite_losses_are_not_tracked() -> None:
    rule = ExampleLossStop(rise=1.0)
    rule({"step": 1, "forget_indices": [0, 1], "forget_losses": [0.0, math.nan]})
    assert rule({"step": 2, "forget_indices": [0, 1], "forget_losses": [3.0, math.nan]})
    assert sorted(rule.first) == [0]


@pytest.mark.parametrize("kwargs", [{"rise": 0.0}, {"rise": math.inf}, {"rise": 1.0, "quantile": 1.0},
                                    {"rise": 1.0, "quantile": -0.1}])
def test_example_rule_bad_settings(kwargs) -> None:
    with pytest.raises(ValueError):
        ExampleLossStop(**kwargs)


def test_mismatched_record_is_refused() -> None:
    with pytest.raises(ValueError, match="differ"):
        ExampleLossStop(rise=1.0)({"step": 1, "forget_indices": [0, 1], "forget_losses": [0.0]})


def test_stopping_rule_of_a_config() -> None:
    ascent = UnlearnConfig(forget_target="ascent")
    assert stopping_rule(ascent.replace(stop_rise=None)) is None
    mean = stopping_rule(ascent.replace(stop_rise=3.0, stop_min_steps=7))
    assert isinstance(mean, ForgetLossStop) and (mean.rise, mean.min_steps) == (3.0, 7)
    both = stopping_rule(ascent.replace(stop_rise=3.0, stop_example_rise=2.0, stop_quantile=0.1))
    assert isinstance(both, ExampleLossStop) and isinstance(both.floor, ForgetLossStop)
    assert (both.rise, both.quantile, both.floor.rise) == (2.0, 0.1, 3.0)
    alone = stopping_rule(ascent.replace(stop_rise=None, stop_example_rise=2.0))
    assert isinstance(alone, ExampleLossStop) and alone.floor is None


@pytest.mark.parametrize("changes", [{"stop_example_rise": 0.0}, {"stop_example_rise": math.nan},
                                     {"stop_quantile": 1.0}, {"stop_quantile": -0.5},
                                     {"stop_quantile": True}])
def test_config_refuses_bad_example_settings(changes) -> None:
    with pytest.raises(UsageError):
        UnlearnConfig(**changes).validate()


def test_the_loop_records_each_forget_examples_loss_before_the_step() -> None:
    """``forget_losses`` of step k are the per-example cross-entropies of the model before
    step k (float64 recomputation), for the indices ``forget_indices``."""
    model, forget, retain = make_classifier_data()
    seen: list[tuple[list[int], list[float]]] = []
    before = [p.detach().clone() for p in model.parameters()]

    def check(record):
        seen.append((record["forget_indices"], record["forget_losses"]))

    result = unlearn(model, forget, retain, "ngdiff", epochs=2, batch_size=4, lr=0.5,
                     autolr=False, stop_rise=None, forget_target="ascent", callbacks=[check])
    ref = make_classifier_data()[0].double()
    for p, q in zip(ref.parameters(), before):
        assert torch.equal(p.float(), q)
    idx, losses = seen[0]
    x = torch.stack([forget[i][0] for i in idx]).double()
    y = torch.stack([forget[i][1] for i in idx]).long()
    want = torch.nn.functional.cross_entropy(ref(x), y, reduction="none")
    assert losses == pytest.approx(want.tolist(), rel=1e-5, abs=1e-6)
    per_epoch = math.ceil(len(forget) / 4)
    assert sorted(i for h in result.history[:per_epoch] for i in h["forget_indices"]) \
        == list(range(len(forget)))


def test_config_stop_example_rise_stops_where_the_rule_says() -> None:
    model, forget, retain = make_classifier_data()
    ran = unlearn(model, forget, retain, "ngdiff", epochs=30, batch_size=4, lr=0.5,
                  autolr=False, stop_rise=None, stop_example_rise=1.0, stop_min_steps=0,
                  forget_target="ascent", retain_check=None)
    rule = ExampleLossStop(rise=1.0)
    replay = [rule(h) for h in ran.history]
    assert not ran.completed and replay.index(True) + 1 == ran.steps
    assert min(rule.rises()) >= 1.0


def test_a_resumed_run_stops_where_an_uninterrupted_one_does(tmp_path) -> None:
    settings = {"epochs": 30, "batch_size": 4, "lr": 0.5, "autolr": False, "stop_rise": None,
                "stop_example_rise": 1.0, "stop_min_steps": 0, "forget_target": "ascent"}
    model, forget, retain = make_classifier_data()
    whole = unlearn(model, forget, retain, "ngdiff", **settings)
    model, forget, retain = make_classifier_data()
    unlearn(model, forget, retain, "ngdiff", checkpoint_dir=tmp_path, max_steps=whole.steps - 2,
            **settings)
    resumed = unlearn(model, forget, retain, "ngdiff", checkpoint_dir=tmp_path, resume=True,
                      **settings)
    assert resumed.steps == whole.steps > 3


# ---------------------------------------------------------------------- ForgetGapStop


def _reference_gap_stop(values: list[float], cap: float, gap: float, ema: float,
                        min_steps: int) -> int | None:
    """The first 1-based step at which the float reference of the gap rule says stop."""
    t = cap - values[0]
    for k, value in enumerate(values, start=1):
        if k > 1:
            t = ema * t + (1 - ema) * (cap - value)
        if k >= min_steps and t <= gap:
            return k
    return None


@given(values=st.lists(st.floats(-20.0, 5.0), min_size=1, max_size=40),
       cap=st.floats(0.7, 12.0), gap=st.floats(0.01, 3.0), ema=st.floats(0.0, 0.99),
       min_steps=st.integers(0, 10))
def test_gap_rule_stops_exactly_where_the_definition_says(values, cap, gap, ema,
                                                          min_steps) -> None:
    values = [min(v, cap) for v in values]  # the bounded target never exceeds its cap
    rule = ForgetGapStop(gap=gap, ema=ema, min_steps=min_steps)
    decisions = [rule({"step": k, "loss_forget": v, "forget_cap": cap})
                 for k, v in enumerate(values, start=1)]
    want = _reference_gap_stop(values, cap, gap, ema, min_steps)
    first = next((k for k, d in enumerate(decisions, start=1) if d), None)
    assert first == want and rule.stopped_at == want


def _reference_example_gap_stop(steps: list[list[tuple[int, float, float]]], cap: float,
                                gap: float, ema: float, min_steps: int) -> int | None:
    """The float reference of the per-example gap rule: each step is a batch of
    ``(index, capped token-mean loss, empty loss)``; its forget value is the batch mean of
    ``loss − empty``."""
    t, latest = None, {}
    for k, batch in enumerate(steps, start=1):
        value = sum(loss - empty for _, loss, empty in batch) / len(batch)
        t = cap - value if t is None else ema * t + (1 - ema) * (cap - value)
        for i, loss, empty in batch:
            latest[i] = cap - loss + empty
        if k >= min_steps and t <= gap and max(latest.values()) <= gap:
            return k
    return None


_example = st.tuples(st.integers(0, 5), st.floats(0.0, 1.0), st.floats(0.0, 3.0))


@given(steps=st.lists(st.lists(_example, min_size=1, max_size=4), min_size=1, max_size=30),
       cap=st.floats(0.7, 12.0), gap=st.floats(0.01, 3.0), ema=st.floats(0.0, 0.99),
       min_steps=st.integers(0, 10))
def test_per_example_gap_rule_stops_exactly_where_the_definition_says(steps, cap, gap, ema,
                                                                      min_steps) -> None:
    """Losses are drawn as fractions of the cap (the capped loss never exceeds it)."""
    steps = [[(i, loss * cap, empty) for i, loss, empty in batch] for batch in steps]
    steps = [list({i: (i, loss, empty) for i, loss, empty in batch}.values()) for batch in steps]
    rule = ForgetGapStop(gap=gap, ema=ema, min_steps=min_steps)
    decisions = [rule({"step": k, "forget_cap": cap,
                       "loss_forget": sum(loss - empty for _, loss, empty in batch) / len(batch),
                       "forget_indices": [i for i, _, _ in batch],
                       "forget_losses": [loss for _, loss, _ in batch],
                       "forget_empty": [empty for _, _, empty in batch]})
                 for k, batch in enumerate(steps, start=1)]
    want = _reference_example_gap_stop(steps, cap, gap, ema, min_steps)
    first = next((k for k, d in enumerate(decisions, start=1) if d), None)
    assert first == want and rule.stopped_at == want


def test_one_example_outside_the_gap_holds_the_rule_back() -> None:
    """The mean gap is within ln 2 but example 1 is not: the per-example rule waits for it
    (classifier records: no empty term), the mean rule alone does not."""
    cap = math.log(10.0)
    record = {"step": 1, "forget_cap": cap, "loss_forget": cap - 0.5,
              "forget_indices": [0, 1, 2, 3], "forget_losses": [cap, cap, cap, cap - 2.0]}
    assert not ForgetGapStop()(record)
    assert ForgetGapStop(per_example=False)(record)
    rule = ForgetGapStop()
    rule(record)
    assert rule.latest[3] == pytest.approx(2.0)
    later = {**record, "step": 2, "forget_indices": [3], "forget_losses": [cap - 0.1]}
    assert rule(later) and rule.stopped_at == 2
    nan = {**record, "step": 1, "forget_losses": [cap, cap, cap, math.nan]}
    assert ForgetGapStop()(nan)  # an example without a scored token is not tracked


def test_per_example_gap_records_must_line_up() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        ForgetGapStop()({"step": 1, "forget_cap": 1.0, "loss_forget": 1.0,
                         "forget_indices": [0, 1], "forget_losses": [1.0, 1.0],
                         "forget_empty": [0.0]})


def test_gap_rule_ignores_records_without_a_cap() -> None:
    rule = ForgetGapStop(max_steps=3)
    assert [rule({"step": k, "loss_forget": 100.0}) for k in (1, 2, 3)] == [False, False, True]


@pytest.mark.parametrize("kwargs", [{"gap": 0.0}, {"gap": math.inf}, {"ema": 1.0}])
def test_gap_rule_bad_settings(kwargs) -> None:
    with pytest.raises(ValueError):
        ForgetGapStop(**kwargs)


def test_the_default_rule_is_the_gap_rule_for_cross_entropy_methods() -> None:
    rule = stopping_rule(UnlearnConfig())
    assert isinstance(rule, ForgetGapStop)
    assert (rule.gap, rule.min_steps) == (math.log(2.0), 60)
    assert stopping_rule(UnlearnConfig(stop_gap=None)) is None
    for config in (UnlearnConfig(method="npo"), UnlearnConfig(forget_target="ascent")):
        assert isinstance(stopping_rule(config), ForgetLossStop)


@pytest.mark.parametrize("changes", [{"forget_target": "unlearn"}, {"stop_gap": 0.0},
                                     {"stop_gap": math.nan}])
def test_config_refuses_bad_target_settings(changes) -> None:
    with pytest.raises(UsageError):
        UnlearnConfig(**changes).validate()


def test_config_stop_gap_stops_where_the_rule_says() -> None:
    model, forget, retain = make_classifier_data()
    ran = unlearn(model, forget, retain, "ngdiff", epochs=60, batch_size=4, lr=0.5,
                  autolr=False, stop_gap=0.2, stop_min_steps=0, retain_check=None)
    rule = ForgetGapStop(gap=0.2)
    replay = [rule(h) for h in ran.history]
    assert not ran.completed and replay.index(True) + 1 == ran.steps


def test_the_per_example_rule_is_refused_with_the_refuse_target() -> None:
    with pytest.raises(UsageError, match="ascent"):
        UnlearnConfig(stop_example_rise=30.0).validate()
    UnlearnConfig(stop_example_rise=30.0, forget_target="ascent").validate()
    UnlearnConfig(stop_example_rise=30.0, method="npo").validate()

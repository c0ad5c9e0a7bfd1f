"""The retain check: its sample, its repair batches and its decisions against their
definitions, each task's agreement against a float64 reference, and inside unlearn()."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastngd import NGDiffOptimizer
from fastngd.errors import UsageError
from fastngd.unlearn import UnlearnConfig, loop, unlearn
from fastngd.unlearn.retain_check import RetainCheck, agreements, check_sample
from fastngd.unlearn.tasks import CausalLMTask, ClassifierTask

from .conftest import make_classifier_data


@given(n=st.integers(1, 300), size=st.integers(1, 400), seed=st.integers(0, 10**6))
def test_the_sample_is_every_example_or_a_seeded_subset(n, size, seed) -> None:
    sample = check_sample(n, size, seed)
    assert sample == sorted(set(sample)) and all(0 <= i < n for i in sample)
    assert len(sample) == min(n, size)
    assert sample == check_sample(n, size, seed)


@given(data=st.data(), size=st.integers(1, 12), steps=st.integers(1, 6))
def test_repair_batches_lead_with_the_broken_examples(data, size, steps) -> None:
    """Each repair batch has the planned batch's size, distinct examples drawn from the
    broken and the planned ones, and starts with the broken ones (a moving window of them
    when they do not fit); the round's batches hold min(#broken, steps·size) of them."""
    pending = data.draw(st.lists(st.integers(0, 40), min_size=1, max_size=30, unique=True))
    check = RetainCheck(repair_steps=steps, rounds=1, pending=pending, steps_left=steps)
    seen: set[int] = set()
    for k in range(steps):
        planned = data.draw(st.lists(st.integers(0, 40), min_size=size, max_size=size,
                                     unique=True))
        batch, lead = check.repair_batch(planned)
        assert len(batch) == size == len(set(batch))
        assert set(batch) <= set(pending) | set(planned)
        assert lead == min(len(pending), size)
        assert set(batch[:lead]) <= set(pending)
        seen |= set(batch[:lead])
        assert check.steps_left == steps - k - 1
    assert len(seen) == min(len(pending), steps * size)
    assert not check.repairing


class _Scripted(RetainCheck):
    """A check whose ``broken`` returns a scripted list per call."""

    def __init__(self, script: list[list[int]], **kwargs) -> None:
        super().__init__(**kwargs)
        self.script, self.calls = list(script), 0

    def broken(self, model, task, data, batch_size):
        self.calls += 1
        return self.script.pop(0)


class _ValuesTask:
    """A task whose agreement of example i is ``values[i]``; logs every batch it scores."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.batches = values, []

    def collate(self, rows: list[int]) -> list[int]:
        return rows

    def agreement(self, model: torch.nn.Module, batch: list[int]) -> torch.Tensor:
        self.batches.append(list(batch))
        return torch.tensor([self.values[i] for i in batch])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), batch_size=st.integers(1, 9), world=st.integers(1, 4),
       seed=st.integers(0, 1000))
def test_the_ranks_share_the_scoring_in_whole_batches(n, batch_size, world, seed) -> None:
    """Under W ranks (simulated): every rank runs the same number of forwards, batch b of the
    one-process order goes to rank b mod W (the rest are fillers), and the values gathered
    (summed over the ranks) are the one-process values."""
    from fastngd.unlearn import retain_check as module

    indices = sorted(torch.randperm(60, generator=torch.Generator().manual_seed(seed))[:n]
                     .tolist())
    values = torch.rand(60, generator=torch.Generator().manual_seed(seed + 1)).tolist()
    model = torch.nn.Linear(1, 1)
    alone = _ValuesTask(values)
    want = agreements(model, alone, list(range(60)), indices, batch_size)
    assert want == [torch.tensor(values[i]).item() for i in indices]
    per_rank, scored = [], []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(module.fdist, "world_size", lambda: world)
        mp.setattr(module.fdist, "sum_over_ranks", lambda t: t)
        for rank in range(world):
            mp.setattr(module.fdist, "rank", lambda rank=rank: rank)
            task = _ValuesTask(values)
            per_rank.append(agreements(model, task, list(range(60)), indices, batch_size))
            scored.append(task.batches)
    assert len({len(batches) for batches in scored}) == 1  # the same forwards on every rank
    for b, batch in enumerate(alone.batches):
        assert scored[b % world][b // world] == batch
    assert [sum(v) for v in zip(*per_rank)] == (want if n else [])


def test_the_values_are_gathered_on_the_parameters_device(monkeypatch) -> None:
    """A task may return its scores on another device than the model's (here: the host, for
    a model on ``meta``); the collective gets them on the parameters' device, where NCCL
    needs them."""
    from fastngd.unlearn import retain_check as module

    seen = []

    def gather(t: torch.Tensor) -> torch.Tensor:
        seen.append(t.device)
        return torch.tensor([0.5] * t.numel())

    monkeypatch.setattr(module.fdist, "world_size", lambda: 2)
    monkeypatch.setattr(module.fdist, "sum_over_ranks", gather)
    model = torch.nn.Linear(1, 1, device="meta")
    assert agreements(model, _ValuesTask([1.0] * 5), list(range(5)), [0, 1, 2], 2) == [0.5] * 3
    assert seen == [torch.device("meta")]


def test_stop_decisions_follow_the_rounds() -> None:
    check = _Scripted([[3, 5], [5], []], repair_steps=2, rounds=3, kept=[1, 3, 5])
    assert not check.round_over                                     # no check yet
    assert check.on_stop(10, None, None, None, 4) is False          # 2 broken: round 1
    assert (check.pending, check.steps_left, check.rounds_done) == ([3, 5], 2, 1)
    assert check.on_stop(11, None, None, None, 4) is False          # the round goes on
    check.repair_batch([0, 1, 2, 4])
    assert not check.round_over                                     # one step left
    check.repair_batch([0, 1, 2, 4])
    assert check.calls == 1 and check.round_over                    # ended, unchecked
    assert check.on_stop(12, None, None, None, 4) is False          # 1 broken: round 2
    check.steps_left = 0
    assert check.on_stop(14, None, None, None, 4) is True           # nothing broken
    assert not check.round_over
    assert check.log == [{"step": 10, "broken": 2}, {"step": 12, "broken": 1},
                         {"step": 14, "broken": 0}]


def test_the_run_stops_when_the_rounds_are_spent() -> None:
    check = _Scripted([[1], [1]], repair_steps=1, rounds=1, kept=[1])
    assert check.on_stop(5, None, None, None, 4) is False
    check.steps_left = 0
    assert check.on_stop(6, None, None, None, 4) is True
    assert check.rounds_done == 1 and check.log[-1] == {"step": 6, "broken": 1}


def test_nothing_kept_means_nothing_to_check() -> None:
    check = _Scripted([], kept=[])
    assert check.on_stop(1, None, None, None, 4) is True and check.calls == 0


def test_state_round_trip() -> None:
    check = RetainCheck(repair_steps=3, rounds=2, checked=7, kept=[1, 2], pending=[2],
                        steps_left=1, rounds_done=1, log=[{"step": 4, "broken": 1}])
    other = RetainCheck()
    other.load_state_dict(check.state_dict())
    assert other.state_dict() == check.state_dict()
    assert other.summary() == {"checked": 7, "kept": 2, "rounds": 1,
                               "log": [{"step": 4, "broken": 1}]}


def test_lm_agreement_matches_a_float64_reference(trained_lm, lm_data) -> None:
    forget, retain = lm_data
    task = CausalLMTask(pad_token_id=0)
    batch = task.collate([*forget.encodings[:3], *retain.encodings[:5]])
    got = task.agreement(trained_lm, batch)
    model64 = trained_lm.double()
    with torch.no_grad():
        logits = model64(input_ids=batch["input_ids"],
                         attention_mask=batch["attention_mask"]).logits
    for i in range(len(got)):
        hits = n = 0
        for t in range(1, batch["labels"].shape[1]):
            label = int(batch["labels"][i, t])
            if label == -100:
                continue
            n += 1
            hits += int(int(logits[i, t - 1].argmax()) == label)
        assert got[i].item() == pytest.approx(hits / n)
    assert got.max().item() == 1.0  # the trained model reproduces some examples


def test_classifier_agreement_is_the_hit_of_the_predicted_class() -> None:
    model, _, retain = make_classifier_data()
    task = ClassifierTask()
    x, y = task.collate(retain)
    want = (model(x).argmax(dim=-1) == y).double()
    assert torch.equal(task.agreement(model, (x, y)), want)


def _trained_classifier() -> tuple[torch.nn.Module, list, list]:
    """The MLP of ``make_classifier_data`` fitted to every example (all reproduced)."""
    model, forget, retain = make_classifier_data()
    x = torch.stack([a for a, _ in forget + retain])
    y = torch.stack([b for _, b in forget + retain])
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(400):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, forget, retain


def _reproduced(model: torch.nn.Module, data: list) -> torch.Tensor:
    x = torch.stack([a for a, _ in data])
    y = torch.stack([b for _, b in data])
    with torch.no_grad():
        return model(x).argmax(dim=-1) == y


SETTINGS = {"batch_size": 4, "retain_batch_size": 8, "lr": 1.0, "autolr": False,
            "stop_min_steps": 0}


def test_the_check_repairs_what_a_run_broke() -> None:
    """At a large fixed rate the run breaks retain examples the model classified correctly;
    without the check it stops with them broken, with the check it repairs them (and the
    forget class stays forgotten)."""
    model, forget, retain = _trained_classifier()
    assert bool(_reproduced(model, retain).all())
    plain = unlearn(model, forget, retain, "ngdiff", retain_check=None, **SETTINGS)
    assert plain.retain_check is None
    assert int((~_reproduced(model, retain)).sum()) >= 1

    model, forget, retain = _trained_classifier()
    checked = unlearn(model, forget, retain, "ngdiff", **SETTINGS)
    summary = checked.retain_check
    assert summary is not None and summary["checked"] == summary["kept"] == len(retain)
    assert summary["log"][0]["step"] == plain.steps and summary["log"][0]["broken"] >= 1
    assert summary["log"][-1]["broken"] == 0 and bool(_reproduced(model, retain).all())
    assert not bool(_reproduced(model, forget).any())
    repairs = [h["retain_repair"] for h in checked.history]
    assert sum(r > 0 for r in repairs) == UnlearnConfig().retain_repair_steps * summary["rounds"]
    assert all(r == 0 for r in repairs[:plain.steps])


ADAM = {**SETTINGS, "lr": 0.3, "optimizer_options": {"base": "adam"}}
"""The same with the Adam base (a rate at which its run breaks retain examples)."""


def test_each_repair_round_starts_from_a_cleared_momentum(monkeypatch) -> None:
    """With the Adam base, ``reset_momentum`` is called once per round, right where a check
    starts it, and leaves the first moment zero; the rounds repair every broken example."""
    calls: list[tuple[int, float]] = []
    original = NGDiffOptimizer.reset_momentum

    def spy(self: NGDiffOptimizer) -> None:
        original(self)
        first = [s["exp_avg"] for s in self.state.values() if "exp_avg" in s]
        calls.append((int(self.num_steps), max(float(m.abs().max()) for m in first)))

    monkeypatch.setattr(NGDiffOptimizer, "reset_momentum", spy)
    model, forget, retain = _trained_classifier()
    result = unlearn(model, forget, retain, "ngdiff", **ADAM)
    summary = result.retain_check
    assert summary is not None and summary["rounds"] >= 1
    started = [x["step"] for x in summary["log"] if x["broken"] > 0][:summary["rounds"]]
    assert [step for step, _ in calls] == started
    assert all(norm == 0.0 for _, norm in calls)
    assert summary["log"][-1]["broken"] == 0 and bool(_reproduced(model, retain).all())
    assert not bool(_reproduced(model, forget).any())


def _at_the_limit(epochs: int = 3) -> tuple[dict, int]:
    """Adam settings whose stopping rule may first fire at the last step of ``epochs``
    epochs (as on a forget set of one batch), and that step."""
    total = epochs * -(-len(make_classifier_data()[1]) // ADAM["batch_size"])
    return {**ADAM, "epochs": epochs, "stop_min_steps": total}, total


def test_repair_rounds_run_past_the_epoch_limit(tmp_path) -> None:
    """The rule fires at the limit's last step with examples broken: the rounds run past the
    limit (only repair steps there), the check follows each at once, and the run ends
    repaired; without the check it ends at the limit."""
    settings, total = _at_the_limit()
    model, forget, retain = _trained_classifier()
    plain = unlearn(model, forget, retain, "ngdiff", **{**settings, "retain_check": None})
    assert plain.steps == total and plain.completed
    model, forget, retain = _trained_classifier()
    result = unlearn(model, forget, retain, "ngdiff", **settings)
    summary, steps = result.retain_check, UnlearnConfig().retain_repair_steps
    assert summary["log"][0] == {"step": total, "broken": summary["log"][0]["broken"]}
    assert summary["log"][0]["broken"] >= 1 and summary["rounds"] >= 1
    assert result.steps == total + steps * summary["rounds"] and result.completed
    assert [x["step"] for x in summary["log"]] == \
        [total + steps * k for k in range(summary["rounds"] + 1)]
    assert all(h["retain_repair"] > 0 for h in result.history[total:])
    assert summary["log"][-1]["broken"] == 0 and bool(_reproduced(model, retain).all())
    assert not bool(_reproduced(model, forget).any())
    model, forget, retain = _trained_classifier()
    unlearn(model, forget, retain, "ngdiff", checkpoint_dir=tmp_path, max_steps=total + 2,
            **settings)
    resumed = unlearn(model, forget, retain, "ngdiff", checkpoint_dir=tmp_path, resume=True,
                      **settings)
    assert resumed.steps == result.steps and resumed.retain_check == summary


def test_past_the_limit_the_rounds_are_bounded(monkeypatch) -> None:
    """With rounds that never repair everything (a check that always finds the same example
    broken), a run ends ``rounds × steps`` past its limit."""
    settings, total = _at_the_limit()
    model, forget, retain = _trained_classifier()
    monkeypatch.setattr(RetainCheck, "broken", lambda self, *a: self.kept[:1])
    result = unlearn(model, forget, retain, "ngdiff", **{**settings, "retain_repair_rounds": 2})
    assert result.retain_check["rounds"] == 2
    assert result.steps == total + 2 * UnlearnConfig().retain_repair_steps


@pytest.mark.parametrize("fire", [5, 4, 3])
def test_a_round_that_ended_before_the_limit_is_checked_at_the_limit(monkeypatch, fire) -> None:
    """A rule that fires once, ``fire`` steps before the limit, starts a round that ends
    before or at the limit; if the rule does not fire again, the check still runs at the
    limit (never a stale log at the end)."""
    settings, total = _at_the_limit()
    monkeypatch.setattr(loop, "stopping_rule",
                        lambda config: (lambda rec: rec["step"] == total - fire))
    model, forget, retain = _trained_classifier()
    result = unlearn(model, forget, retain, "ngdiff", **{**settings, "stop_min_steps": 0})
    log = result.retain_check["log"]
    assert log[0]["step"] == total - fire and log[0]["broken"] >= 1
    assert log[1]["step"] == max(total, total - fire + 4)  # the round's end, at the limit
    assert log[-1]["step"] == result.steps  # the last check is at the run's last step


def test_completed_means_every_epoch_and_the_end(tmp_path) -> None:
    """A pause by ``max_steps`` inside a round past the limit is not ``completed``; the run
    that goes on from it is."""
    settings, total = _at_the_limit()
    model, forget, retain = _trained_classifier()
    paused = unlearn(model, forget, retain, "ngdiff", checkpoint_dir=tmp_path,
                     max_steps=total + 2, **settings)
    assert paused.steps == total + 2 and not paused.completed
    resumed = unlearn(model, forget, retain, "ngdiff", checkpoint_dir=tmp_path, resume=True,
                      **settings)
    assert resumed.steps > total + 2 and resumed.completed


@pytest.mark.parametrize("settings", [SETTINGS, ADAM], ids=["sgd", "adam"])
def test_a_run_resumed_inside_a_repair_round_ends_as_an_uninterrupted_one(
        tmp_path, settings) -> None:
    model, forget, retain = _trained_classifier()
    whole = unlearn(model, forget, retain, "ngdiff", **settings)
    first = whole.retain_check["log"][0]["step"]
    assert whole.steps > first + 2
    model, forget, retain = _trained_classifier()
    unlearn(model, forget, retain, "ngdiff", checkpoint_dir=tmp_path, max_steps=first + 2,
            **settings)
    resumed = unlearn(model, forget, retain, "ngdiff", checkpoint_dir=tmp_path, resume=True,
                      **settings)
    assert resumed.steps == whole.steps
    assert resumed.retain_check == whole.retain_check
    assert [h["retain_repair"] for h in resumed.history] == \
        [h["retain_repair"] for h in whole.history]


def test_a_language_model_run_checks_its_retain_set(trained_lm, lm_data) -> None:
    forget, retain = lm_data
    task = CausalLMTask(pad_token_id=0)
    before = task.agreement(trained_lm, task.collate(retain.encodings))
    result = unlearn(trained_lm, forget, retain, "ngdiff", batch_size=2, retain_batch_size=4,
                     epochs=3, stop_min_steps=0)
    summary = result.retain_check
    assert summary is not None and summary["checked"] == len(retain)
    assert summary["kept"] == int((before == 1.0).sum())


@pytest.mark.parametrize("changes", [
    {"retain_check": 0}, {"retain_check": -3}, {"retain_check": True},
    {"retain_repair_steps": 0}, {"retain_repair_rounds": -1}, {"retain_repair_rounds": 1.5},
])
def test_config_refuses_bad_check_settings(changes) -> None:
    with pytest.raises(UsageError):
        UnlearnConfig(**changes).validate()


def test_config_allows_a_check_without_repairs() -> None:
    UnlearnConfig(retain_repair_rounds=0).validate()
    UnlearnConfig(retain_check=None).validate()


def test_a_model_in_training_mode_is_measured_in_eval_mode(tmp_path) -> None:
    """Dropout must not decide which retain examples count as reproduced, nor NPO's
    reference NLLs: both are taken in eval mode, and the model's mode is given back."""
    model, forget, retain = _trained_classifier()
    model = torch.nn.Sequential(model[0], model[1], torch.nn.Dropout(0.9), model[2])
    model.train()
    want = int(_reproduced(model.eval(), retain).sum())
    x = torch.stack([a for a, _ in forget])
    y = torch.stack([b for _, b in forget])
    with torch.no_grad():
        ref = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    model.train()
    result = unlearn(model, forget, retain, "npo", max_steps=1, batch_size=4,
                     checkpoint_dir=tmp_path)
    assert model.training
    assert result.retain_check["kept"] == want == len(retain)
    from fastngd.unlearn import load_checkpoint

    torch.testing.assert_close(load_checkpoint(tmp_path)["ref_nll"], ref)

"""The unlearning loop on tiny models: losses move the right way, evaluation, protocol."""
from __future__ import annotations

import copy

import pytest
import torch

from fastngd.unlearn import CausalLMTask, load_checkpoint, mean_nll, unlearn

from .conftest import make_classifier_data


def _ce(model, task, data) -> float:
    with torch.no_grad():
        nll, n = task.nll(model, task.collate([data[i] for i in range(len(data))]))
        return mean_nll(nll, n).item()


@pytest.mark.parametrize("method", ["ngdiff", "pcgrad", "mgda", "imtlg"])
@pytest.mark.parametrize("autolr", [True, False])
def test_two_sided_rules_lower_retain_and_raise_forget(tiny_lm, lm_data, method, autolr) -> None:
    forget, retain = lm_data
    task = CausalLMTask(0)
    before = _ce(tiny_lm, task, forget), _ce(tiny_lm, task, retain)
    result = unlearn(tiny_lm, forget, retain, method, autolr=autolr, epochs=3, batch_size=2,
                     retain_batch_size=12, lr=0.05, autolr_every=2, forget_target="ascent")
    after = _ce(tiny_lm, task, forget), _ce(tiny_lm, task, retain)
    assert result.steps == 6 and result.completed
    assert after[0] > before[0] + 0.01, (before, after)
    assert after[1] < before[1] - 0.01, (before, after)


@pytest.mark.parametrize("method", ["gdiff-0.5", "npo", "simnpo", "lossnorm", "ga"])
def test_forget_objectives_raise_forget_nll(trained_lm, lm_data, method) -> None:
    forget, retain = lm_data
    task = CausalLMTask(0)
    before = _ce(trained_lm, task, forget)
    result = unlearn(trained_lm, forget, retain, method, autolr=False, epochs=3, batch_size=4,
                     lr=0.5 if method in ("npo", "simnpo") else 0.1)
    assert _ce(trained_lm, task, forget) > before + 0.01
    assert len(result.history) == 3
    assert all(h["lr"] > 0 for h in result.history)


def test_gd_lowers_retain_only(tiny_lm, lm_data) -> None:
    forget, retain = lm_data
    task = CausalLMTask(0)
    before = _ce(tiny_lm, task, retain)
    result = unlearn(tiny_lm, forget, retain, "gd", autolr=True, epochs=2, batch_size=2, lr=0.05)
    assert _ce(tiny_lm, task, retain) < before
    assert all(h["weight_forget"] == 0 for h in result.history)


def test_qa_rows_are_encoded_with_tokenizer(tiny_lm, qa_split, word_tokenizer) -> None:
    forget, retain = qa_split
    result = unlearn(tiny_lm, forget, retain, epochs=1, batch_size=4, tokenizer=word_tokenizer)
    assert result.steps == 1
    with pytest.raises(ValueError, match="tokenizer"):
        unlearn(tiny_lm, forget, retain, epochs=1)


def test_text_and_qa_rows_are_encoded_together(tiny_lm, qa_split, word_tokenizer) -> None:
    """Raw-text rows mixed with QA rows (a MUSE-style forget set with its QA) are encoded by
    rows_dataset: every row is an example of the run."""
    forget, retain = qa_split
    mixed = [{"text": "the family lived in the north ."}, *forget[:3]]
    result = unlearn(tiny_lm, mixed, retain, epochs=1, batch_size=2, tokenizer=word_tokenizer)
    assert result.steps == 2
    seen = sorted(i for h in result.history for i in h["forget_indices"])
    assert seen == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="tokenizer"):
        unlearn(tiny_lm, mixed, retain, epochs=1)


def test_protocol_pairs_each_forget_batch_with_a_retain_batch() -> None:
    model, forget, retain = make_classifier_data()
    seen: list[int] = []
    unlearn(model, forget, retain, "ngdiff", epochs=2, batch_size=4,
            callbacks=[lambda rec: seen.append(rec["epoch"]) and None])
    per_epoch = -(-len(forget) // 4)
    assert seen == [1] * per_epoch + [2] * per_epoch


def test_evaluate_runs_at_start_every_k_and_end() -> None:
    model, forget, retain = make_classifier_data()
    calls: list[int] = []

    def evaluate(m):
        calls.append(1)
        return {"forget_acc": 0.5}

    result = unlearn(model, forget, retain, epochs=1, batch_size=2, eval_every=3,
                     evaluate=evaluate)
    steps = result.steps
    expected = [0] + list(range(3, steps, 3)) + [steps]
    assert [e["step"] for e in result.evals] == expected
    assert result.evals[0]["forget_acc"] == 0.5 and len(calls) == len(expected)


@pytest.mark.parametrize("how", ["callback", "rule"])
def test_a_run_that_stops_early_is_evaluated_at_its_end(tmp_path, how) -> None:
    """The end of a run stopped by a callback or by the stopping rule is evaluated (and
    checkpointed) like the end of its last epoch, once."""
    model, forget, retain = make_classifier_data()
    stop = {"callbacks": [lambda rec: rec["step"] >= 5]} if how == "callback" else \
        {"stop_min_steps": 0, "lr": 1.0, "autolr": False, "retain_check": None}
    result = unlearn(model, forget, retain, epochs=20, batch_size=2, eval_every=4,
                     evaluate=lambda m: {"x": 1.0}, checkpoint_dir=tmp_path, **stop)
    assert not result.completed and result.steps < 20 * -(-len(forget) // 2)
    steps = [e["step"] for e in result.evals]
    assert steps == [0] + list(range(4, result.steps, 4)) + [result.steps]
    assert load_checkpoint(tmp_path)["step"] == result.steps


def test_resuming_a_run_that_has_ended_takes_no_step(tmp_path) -> None:
    """The checkpoint of a run that ended early (its stopping rule) says so: resuming it
    gives the same result, with no further step, check or evaluation."""
    model, forget, retain = make_classifier_data()
    settings = {"epochs": 20, "batch_size": 2, "stop_min_steps": 0, "lr": 1.0,
                "autolr": False, "evaluate": lambda m: {"x": 1.0}, "checkpoint_dir": tmp_path}
    first = unlearn(model, forget, retain, **settings)
    assert not first.completed and first.steps < 20 * -(-len(forget) // 2)
    params = [p.detach().clone() for p in model.parameters()]
    again = unlearn(model, forget, retain, resume=True, **settings)
    assert again.steps == first.steps and not again.completed
    assert again.evals == first.evals and again.retain_check == first.retain_check
    assert again.history == first.history
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), params))


def test_callback_can_stop_and_model_mode_restored() -> None:
    model, forget, retain = make_classifier_data()
    model.train()
    result = unlearn(model, forget, retain, epochs=3, batch_size=2,
                     callbacks=[lambda rec: rec["step"] >= 2])
    assert result.steps == 2 and not result.completed
    assert model.training


def test_same_seed_same_result_other_seed_differs() -> None:
    model, forget, retain = make_classifier_data()
    a, b, c = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    unlearn(a, forget, retain, "rlw", epochs=2, batch_size=3, seed=1)
    unlearn(b, forget, retain, "rlw", epochs=2, batch_size=3, seed=1)
    unlearn(c, forget, retain, "rlw", epochs=2, batch_size=3, seed=2)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "bogus"}, "valid methods"),
    ({"epochs": 0}, "epochs"),
    ({"lr": -1.0}, "lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"resume": True}, "checkpoint_dir"),
])
def test_bad_settings(kwargs, match) -> None:
    model, forget, retain = make_classifier_data()
    with pytest.raises(ValueError, match=match):
        unlearn(model, forget, retain, **kwargs)


def test_bad_data() -> None:
    model, _forget, retain = make_classifier_data()
    with pytest.raises(ValueError, match="empty"):
        unlearn(model, [], retain)
    with pytest.raises(TypeError, match="how to score"):
        unlearn(model, ["a"], ["b"])


def _scored_by_step(target: int):
    """An evaluate hook whose ``distance`` metric is |step − target| (steps counted by
    the hook itself), plus a copy of the parameters at every evaluation."""
    seen: dict[int, list[torch.Tensor]] = {}
    count = {"step": 0}

    def evaluate(model):
        step = count["step"]
        seen[step] = [p.detach().clone() for p in model.parameters()]
        return {"distance": float(abs(step - target)), "const": 1.0}

    def advance(record):
        count["step"] = record["step"]

    return evaluate, advance, seen


@pytest.mark.parametrize("with_folder", [False, True])
def test_keep_best_keeps_the_state_of_the_best_evaluation(tmp_path, with_folder) -> None:
    model, forget, retain = make_classifier_data()
    evaluate, advance, seen = _scored_by_step(target=4)
    result = unlearn(model, forget, retain, epochs=2, batch_size=2, eval_every=2,
                     keep_best="distance:min", evaluate=evaluate, callbacks=[advance],
                     checkpoint_dir=tmp_path if with_folder else None)
    assert [e["step"] for e in result.evals][:4] == [0, 2, 4, 6]
    assert result.best["step"] == 4 and result.best["score"] == 0.0
    state = result.best_state()
    for (name, _), expected in zip(model.named_parameters(), seen[4]):
        assert torch.equal(state[name], expected), name
    assert (tmp_path / "best.pt").exists() == with_folder


def test_keep_best_survives_resume(tmp_path) -> None:
    model, forget, retain = make_classifier_data()
    settings = {"epochs": 2, "batch_size": 2, "eval_every": 1, "keep_best": "distance:min"}
    evaluate, advance, _ = _scored_by_step(target=3)
    unlearn(model, forget, retain, evaluate=evaluate, callbacks=[advance], max_steps=5,
            checkpoint_dir=tmp_path, **settings)
    evaluate, advance, _ = _scored_by_step(target=3)  # a fresh process would count anew
    resumed = unlearn(model, forget, retain, evaluate=lambda m: {"distance": 9.0},
                      checkpoint_dir=tmp_path, resume=True, **settings)
    assert resumed.best["step"] == 3 and resumed.best_state()


def test_keep_best_needs_an_evaluate_hook() -> None:
    model, forget, retain = make_classifier_data()
    with pytest.raises(ValueError, match="evaluate"):
        unlearn(model, forget, retain, epochs=1, keep_best="distance:min")


@pytest.mark.parametrize("autolr", [True, False])
def test_divergence_advice_fits_autolr(autolr) -> None:
    from fastngd.unlearn import UnlearningDiverged

    model, forget, retain = make_classifier_data()

    def poison(record):
        with torch.no_grad():
            model[0].weight.fill_(float("nan"))

    with pytest.raises(UnlearningDiverged) as info:
        unlearn(model, forget, retain, epochs=1, batch_size=2, autolr=autolr, callbacks=[poison])
    message = str(info.value)
    assert info.value.step == 1 and not info.value.model_finite
    if autolr:
        assert "AutoLR was on" in message and "turn AutoLR on" not in message
    else:
        assert "turn AutoLR on (--autolr)" in message


def test_lora_trains_only_the_adapters(tiny_lm, lm_data) -> None:
    pytest.importorskip("peft")
    forget, retain = lm_data
    base = {k: v.clone() for k, v in tiny_lm.state_dict().items()}
    result = unlearn(tiny_lm, forget, retain, epochs=2, batch_size=2, lr=0.05, lora_rank=2)
    trained = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    assert 0 < result.memory["trainable_parameters"] < result.memory["parameters"] / 4
    assert result.memory["gradient_buffer_bytes"] == 2 * result.memory["trainable_bytes"]
    moved = [n for n, p in result.model.named_parameters()
             if "lora_B" in n and p.detach().abs().max() > 0]
    assert moved  # B starts at zero: the adapters were trained
    state = result.model.state_dict()
    for key, value in base.items():  # the base weights were frozen
        suffixes = (key.replace(".weight", ".base_layer.weight"), "model." + key)
        matches = [k for k in state if k.endswith(suffixes)]
        assert any(torch.equal(state[k], value) for k in matches), key

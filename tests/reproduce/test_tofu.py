"""TOFU experiment helpers on a tiny model."""
from __future__ import annotations

import pytest

from fastngd.data import tofu_synthetic
from fastngd.models import load_model
from fastngd.reproduce.tables import autolr_table, method_table
from fastngd.reproduce.tofu import RunSpec, run_tofu, tofu_eval_data


def test_run_tofu_records_every_run(tiny_model_dir) -> None:
    model, tokenizer = load_model(str(tiny_model_dir))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = tofu_synthetic(0)
    runs = [RunSpec("ngdiff", "ngdiff", True, 0.05), RunSpec("ngdiff-fixed", "ngdiff", False, 0.05),
            RunSpec("ngdiff-adamw", "ngdiff", False, 1e-3,
                    {"optimizer_options": {"base": "adamw"}})]
    res = run_tofu(model, tokenizer, data, runs, unlearn_options={"epochs": 1, "batch_size": 20},
                   curve_points=2, curve_max_new_tokens=4, eval_max_new_tokens=4,
                   progress=False, log=lambda s: None)
    assert set(res["methods"]) == {"ngdiff", "ngdiff-fixed", "ngdiff-adamw"}
    for name, entry in res["methods"].items():
        assert entry["steps"] == 2 and entry["diverged"] is False
        for key in ("verbmem", "utility", "truth_ratio", "forget_rouge_l_recall",
                    "retain_rouge_l_recall"):
            assert 0.0 <= entry[key] <= 1.0, (name, key)
        assert [e["step"] for e in res["curves"][name]["evals"]] == [0, 1, 2]
    assert res["methods"]["ngdiff"]["autolr"] is True
    # each run states its base optimizer, in the results and in the table
    assert [e["base"] for e in res["methods"].values()] == ["sgd", "sgd", "adamw"]
    assert res["methods"]["ngdiff-adamw"]["options"]["optimizer_options"] == {"base": "adamw"}
    # the target model is untouched
    assert all((before[k] == v).all() for k, v in model.state_dict().items())
    table1 = method_table(res)
    assert "no unlearning" in table1 and "ngdiff-fixed" in table1
    header, _, _, *rows = table1.splitlines()
    assert header.split()[:3] == ["method", "AutoLR", "base"]
    assert rows[-1].split()[:3] == ["ngdiff-adamw", "no", "adamw"]
    assert "ngdiff" in autolr_table(res)


def test_eval_data_needs_forget_split() -> None:
    with pytest.raises(KeyError, match="forget99"):
        tofu_eval_data(tofu_synthetic(0), "forget99")


def test_run_tofu_refuses_a_malformed_forget_split() -> None:
    from fastngd.errors import UsageError

    with pytest.raises(UsageError, match="forget01/forget05/forget10, got 'forget'"):
        run_tofu(None, None, tofu_synthetic(0), [], forget_split="forget")


def test_run_tofu_rejects_unknown_method(tiny_model_dir) -> None:
    model, tokenizer = load_model(str(tiny_model_dir))
    with pytest.raises(ValueError, match="valid methods"):
        run_tofu(model, tokenizer, tofu_synthetic(0), [RunSpec("x", "nope", True, 0.1)],
                 log=lambda s: None)


def test_worker_processes_match_sequential_runs(tiny_model_dir) -> None:
    """jobs=2 (spawned workers loading the saved model) gives the sequential results."""
    model, tokenizer = load_model(str(tiny_model_dir))
    data = tofu_synthetic(0)
    runs = [RunSpec("ngdiff", "ngdiff", True, 0.05), RunSpec("npo", "npo", False, 0.05)]
    common = {"unlearn_options": {"epochs": 1, "batch_size": 20, "retain_batch_size": 20},
              "curve_points": 1,
              "curve_max_new_tokens": 2, "eval_max_new_tokens": 2, "progress": False,
              "log": lambda s: None}
    seq = run_tofu(model, tokenizer, data, runs, **common)
    par = run_tofu(model, tokenizer, data, runs, jobs=2, model_path=str(tiny_model_dir), **common)
    for name in ("ngdiff", "npo"):
        assert par["curves"][name]["history"] == seq["curves"][name]["history"]
        assert par["methods"][name]["forget_rouge_l_recall"] == seq["methods"][name][
            "forget_rouge_l_recall"]
    with pytest.raises(ValueError, match="model_path"):
        run_tofu(model, tokenizer, data, runs, jobs=2, **common)


def test_eval_data_includes_the_holdout_of_the_forget_split() -> None:
    data = tofu_synthetic(0)
    assert {"holdout10", "forget10_perturbed", "retain_perturbed"} <= set(
        tofu_eval_data(data, "forget10"))
    assert "holdout10" not in tofu_eval_data(
        {k: v for k, v in data.items() if k != "holdout10"}, "forget10")


def test_summaries_carry_forget_quality_and_the_open_unlearning_metrics(tiny_model_dir) -> None:
    """Against itself as the reference the forget truth ratios are identical (KS p-value 1);
    against a changed model they differ."""
    import torch

    model, tokenizer = load_model(str(tiny_model_dir))
    other, _ = load_model(str(tiny_model_dir))
    with torch.no_grad():
        other.lm_head.weight.mul_(3.0)
    data = {name: rows[:12] for name, rows in tofu_synthetic(0).items()}
    common = {"eval_max_new_tokens": 2, "progress": False, "log": lambda s: None}
    same = run_tofu(model, tokenizer, data, [], reference_model=(model, tokenizer), **common)
    summary = same["no_unlearn"]
    assert summary["forget_quality"] == pytest.approx(1.0)
    assert set(summary["mia"]) == {"loss", "zlib", "min_k", "min_k_plus_plus"}
    assert len(summary["model_utility_components"]) == 9
    for key in ("extraction_strength", "exact_memorization", "privleak"):
        assert isinstance(summary[key], float), key
    assert not any("logspace" in key for key in summary)
    changed = run_tofu(model, tokenizer, data, [], reference_model=(other, tokenizer), **common)
    assert changed["no_unlearn"]["forget_quality"] < 0.5
    assert run_tofu(model, tokenizer, data, [], **common)["no_unlearn"]["forget_quality"] is None


def test_final_evaluation_survives_underflowing_probabilities(tiny_model_dir) -> None:
    import torch

    from fastngd.reproduce.tofu import _evaluate_final, _Settings

    model, tokenizer = load_model(str(tiny_model_dir))
    with torch.no_grad():
        model.lm_head.weight.mul_(1e4)  # logits of thousands of nats: exp(-nll) underflows
    data = tofu_synthetic(0)
    settings = _Settings("forget10", "retain90", 0, {}, 1, 2, 2, 128, False)
    summary = _evaluate_final(model, tokenizer, data, settings)
    # evaluate_tofu works in log space: no fallback is needed, the truth ratio is finite
    assert 0.0 <= summary["truth_ratio"] <= 1.0

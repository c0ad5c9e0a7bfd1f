"""UnlearnConfig: the one place of every run setting and its default."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from fastngd.errors import UsageError
from fastngd.unlearn import UnlearnConfig, optimizer_kwargs, unlearn

from .conftest import make_classifier_data


def test_experiments_and_the_python_api_share_the_defaults() -> None:
    from fastngd.reproduce.demo import DEMO_LR

    config = UnlearnConfig()
    assert (config.epochs, config.batch_size, config.retain_batch_size) == (60, 8, 32)
    assert (config.step_size, config.lr, config.stop_rise, config.stop_min_steps) == (
        "gen-guard", 0.1, 30.0, 60)
    assert DEMO_LR == config.lr
    assert config.effective_retain_batch_size == 32
    assert config.replace(retain_batch_size=None).effective_retain_batch_size == 8
    # the unlearn() signature holds no defaults of its own
    import inspect

    params = inspect.signature(unlearn).parameters
    assert not {f.name for f in dataclasses.fields(UnlearnConfig)} & set(params)


def test_replace_normalises_and_rejects_unknown_names() -> None:
    config = UnlearnConfig().replace(retain_batch_size=None, lr=0.1, autolr_clip=[0.25, 4])
    assert config.retain_batch_size is None and config.lr == 0.1
    assert config.autolr_clip == (0.25, 4.0)
    with pytest.raises(UsageError, match="unknown unlearning setting.*'epoch'"):
        UnlearnConfig().replace(epoch=3)
    with pytest.raises(TypeError, match="epoch"):
        model, forget, retain = make_classifier_data()
        unlearn(model, forget, retain, epoch=3)


@pytest.mark.parametrize("change, match", [
    ({"method": "magic"}, "valid methods"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"lr": float("inf")}, "lr"),
    ({"autolr_scale": 2.0}, "autolr_scale"),
    ({"lora_rank": 0}, "lora_rank"),
    ({"stop_rise": 0.0}, "stop_rise"),
    ({"stop_min_steps": -1}, "stop_min_steps"),
    ({"eval_every": -1}, "eval_every"),
    ({"keep_best": "forget_rouge_l_recall"}, "METRIC:min"),
    ({"optimizer_options": {"lr": 1.0}}, "optimizer_options"),
])
def test_validate_names_the_setting(change, match) -> None:
    with pytest.raises(UsageError, match=match):
        UnlearnConfig().replace(**change).validate()


def test_optimizer_options_pass_through_untouched(monkeypatch) -> None:
    from fastngd.unlearn import loop

    seen = {}

    class Recording(loop.NGDiffOptimizer):
        def __init__(self, params, **kwargs):
            seen.update(kwargs)
            kwargs.pop("custom")
            super().__init__(params, **kwargs)

    monkeypatch.setattr(loop, "NGDiffOptimizer", Recording)
    model, forget, retain = make_classifier_data()
    options = {"custom": {"nested": [1, 2]}, "base": "adam", "betas": (0.8, 0.9)}
    unlearn(model, forget, retain, UnlearnConfig(method="gdiff-0.3", epochs=1, batch_size=4,
                                                 optimizer_options=options))
    assert seen["custom"] == {"nested": [1, 2]}
    assert seen["base"] == "adam" and seen["betas"] == (0.8, 0.9)
    assert seen["rule"] == "gdiff" and seen["rule_options"] == {"c": 0.3}
    assert optimizer_kwargs(UnlearnConfig(optimizer_options=options))["custom"] is not None


@pytest.mark.parametrize("options, match", [
    ({"base": "adam", "momentum": 0.9}, (r"momentum \(--momentum\) applies to base momentum, "
                                         r"not to base adam")),
    ({"momentum": 0.9}, "not to base sgd"),
    ({"base": "momentum", "betas": (0.9, 0.99)}, (r"betas \(--betas\) applies to base adam or "
                                                   "adamw")),
    ({"base": "sgd", "eps": 1e-8}, r"--eps"),
    ({"base": "adamw", "betas": (1.0, 0.999)}, r"betas\[0\] must be in \[0, 1\)"),
    ({"base": "adam", "eps": -1.0}, "eps must be >= 0"),
    ({"base": "momentum", "weight_decay": -0.1}, "weight_decay must be >= 0"),
    ({"base": "lion"}, "unknown base 'lion'"),
])
def test_bad_base_options_are_usage_errors(options, match) -> None:
    with pytest.raises(UsageError, match=match):
        UnlearnConfig(optimizer_options=options).validate()


def test_base_options_builds_what_the_optimizer_takes() -> None:
    from fastngd import NGDiffOptimizer
    from fastngd.unlearn import base_options

    assert base_options() == {}
    assert UnlearnConfig().base == "sgd"
    options = base_options("adamw", betas=[0.8, 0.95], eps=1e-6, weight_decay=0)
    assert options == {"base": "adamw", "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.0}
    config = UnlearnConfig(optimizer_options=options)
    config.validate()
    assert config.base == "adamw"
    opt = NGDiffOptimizer([torch.nn.Parameter(torch.ones(2))], **optimizer_kwargs(config))
    group = opt.param_groups[0]
    assert (group["betas"], group["eps"], group["weight_decay"]) == ((0.8, 0.95), 1e-6, 0.0)
    with pytest.raises(UsageError, match="--momentum"):
        base_options("adam", momentum=0.9)
    with pytest.raises(UsageError, match="--backend"):
        UnlearnConfig(backend="cuda").validate()


def test_run_control_settings_may_change_on_resume(tmp_path) -> None:
    model, forget, retain = make_classifier_data()
    config = UnlearnConfig(epochs=2, batch_size=4, max_steps=2, checkpoint_every=1)
    unlearn(model, forget, retain, config, checkpoint_dir=tmp_path)
    resumed = unlearn(model, forget, retain, config.replace(max_steps=None, checkpoint_every=3),
                      checkpoint_dir=tmp_path, resume=True)
    assert resumed.completed


def test_step_size_reaches_the_optimizer() -> None:
    """``step_size`` names the AutoLR rule; without AutoLR the step is fixed whatever it is."""
    from fastngd import NGDiffOptimizer
    from fastngd.step_sizes import STEP_SIZES

    for name in ("gen", "gen-guard"):
        config = UnlearnConfig(step_size=name)
        kwargs = optimizer_kwargs(config)
        assert kwargs["step_size"] == name
        opt = NGDiffOptimizer([torch.nn.Parameter(torch.zeros(2))], **kwargs)
        assert type(opt.step_size) is STEP_SIZES[name]
        assert optimizer_kwargs(config.replace(autolr=False))["step_size"] == "fixed"
    with pytest.raises(UsageError, match="step_size"):
        UnlearnConfig(step_size="magic").validate()


def test_for_base_takes_the_base_rate() -> None:
    from fastngd.unlearn import BASE_LR

    own = {"sgd": {"weight_decay": 0.01}, "momentum": {"momentum": 0.8},
           "adam": {"eps": 1e-6}, "adamw": {"eps": 1e-6}}
    assert set(BASE_LR) == set(own)
    for base, lr in BASE_LR.items():
        config = UnlearnConfig.for_base(base, epochs=3, optimizer_options=own[base])
        assert config.lr == lr and config.epochs == 3
        assert config.optimizer_options == {"base": base, **own[base]}
        config.validate()
    assert UnlearnConfig.for_base("adam", lr=1e-3).lr == 1e-3
    assert BASE_LR["sgd"] == UnlearnConfig().lr
    with pytest.raises(UsageError, match="no default rate"):
        UnlearnConfig.for_base("lion")

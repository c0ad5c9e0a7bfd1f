"""NGDiffTrainer on a tiny LlamaForCausalLM with a word-level tokenizer built here."""
from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from transformers import (
    LlamaForCausalLM,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

from fastngd import NGDiffOptimizer
from fastngd.integrations import NGDiffTrainer
from fastngd.integrations.hf_trainer import TrainerNGDiffOptimizer
from fastngd.models.config import tiny_llama_config
from fastngd.models.tokenizer import build_word_tokenizer
from fastngd.unlearn import UnlearnConfig

NAMES = ["ada", "bo", "cy", "di", "ed", "fay", "gus", "hal", "ivy", "jo", "kai", "lu",
         "max", "ned", "oz", "pia", "quin", "ray", "sal", "tim"]
COLOURS = ["red", "blue", "green", "gold", "grey"]
CITIES = ["paris", "oslo", "lima", "rome", "kyiv", "baku", "doha"]
SEQ = 10


def sentences() -> list[str]:
    return [
        f"{n} likes {COLOURS[i % len(COLOURS)]} and lives in {CITIES[(3 * i) % len(CITIES)]} ."
        for i, n in enumerate(NAMES)
    ]


def encode(tokenizer: Any, text: str) -> dict[str, list[int]]:
    ids = [tokenizer.bos_token_id, *tokenizer(text)["input_ids"], tokenizer.eos_token_id]
    assert len(ids) <= SEQ
    pad = SEQ - len(ids)
    return {
        "input_ids": ids + [tokenizer.pad_token_id] * pad,
        "attention_mask": [1] * len(ids) + [0] * pad,
        "labels": ids + [-100] * pad,
    }


def build_setup() -> dict[str, Any]:
    """A tiny Llama fitted to 20 sentences (forget: the first 5), plus the encoded sets."""
    texts = sentences()
    tokenizer = build_word_tokenizer(texts)
    for name, tid in (("pad_token", 0), ("bos_token", 2), ("eos_token", 3)):
        assert getattr(tokenizer, f"{name}_id") == tid
    examples = [encode(tokenizer, t) for t in texts]
    config = tiny_llama_config(
        len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=SEQ,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    batch = default_data_collator(examples)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(80):
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    return {"state": copy.deepcopy(model.state_dict()), "config": config,
            "forget": examples[:5], "retain": examples[5:]}


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    return build_setup()


def fresh_model(setup: dict[str, Any]) -> LlamaForCausalLM:
    model = LlamaForCausalLM(setup["config"])
    model.load_state_dict(setup["state"])
    return model


@torch.no_grad()
def mean_loss(model: torch.nn.Module, examples: list[dict[str, list[int]]]) -> float:
    model.eval()
    return float(model(**default_data_collator(examples)).loss)


def make_args(tmp_path: Any, **overrides: Any) -> TrainingArguments:
    settings: dict[str, Any] = {
        "output_dir": str(tmp_path), "max_steps": 12, "per_device_train_batch_size": 2,
        "learning_rate": 0.05, "lr_scheduler_type": "constant", "logging_steps": 1, "save_strategy": "no",
        "report_to": [], "disable_tqdm": True, "use_cpu": True, "seed": 0, "dataloader_num_workers": 0,
    }
    settings.update(overrides)
    return TrainingArguments(**settings)


class LogRecorder(TrainerCallback):
    def __init__(self) -> None:
        self.logs: list[dict[str, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[override]
        self.logs.append(dict(logs or {}))


def test_unlearns_forget_keeps_retain_and_logs(setup, tmp_path) -> None:
    model = fresh_model(setup)
    forget0, retain0 = mean_loss(model, setup["forget"]), mean_loss(model, setup["retain"])
    assert forget0 < 1.0 and retain0 < 1.0, "the fixture model should have fitted its data"
    recorder = LogRecorder()
    trainer = NGDiffTrainer(
        model, make_args(tmp_path, learning_rate=0.3), train_dataset=setup["forget"],
        retain_dataset=setup["retain"], retain_batch_size=15, data_collator=default_data_collator,
        config=UnlearnConfig(autolr_scale=1.0, forget_target="ascent"), autolr=True,
        autolr_every=2, callbacks=[recorder],
    )
    trainer.train()
    forget1, retain1 = mean_loss(model, setup["forget"]), mean_loss(model, setup["retain"])
    assert forget1 > forget0 + 0.5, (forget0, forget1)
    assert retain1 < retain0 + 0.2, (retain0, retain1)

    opt = trainer.ngdiff_optimizer
    assert isinstance(opt, TrainerNGDiffOptimizer)
    # exactly one parameter update per Trainer step: the Trainer's own step() was a no-op
    assert int(opt.num_steps) == 12 and opt._global["calls"] == 12
    train_logs = [log for log in recorder.logs if "loss" in log]
    assert len(train_logs) == 12
    for log in train_logs:
        for key in ("retain_loss", "forget_loss", "retain_grad_norm", "forget_grad_norm",
                    "grad_cosine", "weight_retain", "weight_forget", "lr_scale", "learning_rate"):
            assert key in log and log[key] == log[key], key
        assert log["skipped_steps"] == 0
        assert log["loss"] == pytest.approx(log["retain_loss"], rel=1e-5)
        assert "grad_norm" not in log
    assert train_logs[-1]["forget_loss"] > train_logs[0]["forget_loss"]
    assert any(log["lr_scale"] != 1.0 for log in train_logs), "GeN never moved the rate"
    assert trainer.state.log_history[-1]["train_loss"] == trainer.state.log_history[-1]["train_loss"]


def test_the_default_forget_loss_is_the_bounded_refuse_target(setup, tmp_path) -> None:
    """With UnlearnConfig's default target ("refuse"), the Trainer's forget loss is
    refuse_forget_loss: on these sentences (raw text) the token cross-entropy capped at ln V,
    the final EOS label counted at ln V, minus each sentence's mean loss of EOS over its
    positions (float64 reference), so every logged forget loss is at most ln V."""
    import math

    from fastngd.unlearn.forget_target import refuse_forget_loss

    model = fresh_model(setup)
    cap = math.log(model.config.vocab_size)
    eos = model.config.eos_token_id
    fn = refuse_forget_loss(0, eos)
    batch = default_data_collator([setup["forget"][i] for i in range(len(setup["forget"]))])
    with torch.no_grad():
        value = float(fn(model, batch))
        logits = model(input_ids=batch["input_ids"],
                       attention_mask=batch["attention_mask"]).logits[:, :-1].double()
    target = batch["labels"][:, 1:]
    logp = torch.log_softmax(logits, dim=-1)
    mask = target != -100
    per_token = -logp.gather(-1, target.clamp(min=0)[..., None])[..., 0]
    per_token = torch.where(target == eos, cap, per_token.clamp(max=cap))
    ascent = float((per_token * mask).sum() / mask.sum())
    empty = float(((-logp[..., eos] * mask).sum(1) / mask.sum(1)).mean())
    assert value == pytest.approx(ascent - empty, rel=1e-5)
    recorder = LogRecorder()
    trainer = NGDiffTrainer(
        model, make_args(tmp_path, learning_rate=0.3), train_dataset=setup["forget"],
        retain_dataset=setup["retain"], data_collator=default_data_collator,
        callbacks=[recorder],
    )
    assert trainer.forget_loss_fn is not None  # the refuse loss, not compute_loss
    ascent = NGDiffTrainer(
        fresh_model(setup), make_args(tmp_path / "ascent"), train_dataset=setup["forget"],
        retain_dataset=setup["retain"], data_collator=default_data_collator,
        config=UnlearnConfig(forget_target="ascent"))
    assert ascent.forget_loss_fn is None
    trainer.train()
    logs = [log for log in recorder.logs if "forget_loss" in log]
    assert logs and all(float(log["forget_loss"]) <= cap + 1e-4 for log in logs)
    assert min(float(log["forget_loss"]) for log in logs) < 0  # the EOS term at work


def test_checkpoint_holds_the_optimizer_state(setup, tmp_path) -> None:
    model = fresh_model(setup)
    trainer = NGDiffTrainer(
        model, make_args(tmp_path, max_steps=4, save_strategy="steps", save_steps=4),
        train_dataset=setup["forget"], retain_dataset=setup["retain"],
        data_collator=default_data_collator, autolr=True, autolr_every=1,
    )
    trainer.train()
    saved = torch.load(tmp_path / "checkpoint-4" / "optimizer.pt", weights_only=False)
    other = NGDiffOptimizer(fresh_model(setup).parameters(), lr=0.05, autolr=True, autolr_every=1)
    other.load_state_dict(saved)
    assert float(other.lr_scale) == float(trainer.ngdiff_optimizer.lr_scale) != 1.0
    assert int(other.num_steps) == 4


def test_custom_losses_and_rule(setup, tmp_path) -> None:
    seen: dict[str, int] = {"retain": 0, "forget": 0}

    def retain_loss(model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        seen["retain"] += 1
        return model(**inputs).loss

    def forget_loss(model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        seen["forget"] += 1
        return model(**inputs).loss

    model = fresh_model(setup)
    trainer = NGDiffTrainer(
        model, make_args(tmp_path, max_steps=3, learning_rate=0.01), train_dataset=setup["forget"],
        retain_dataset=setup["retain"], data_collator=default_data_collator, rule="gdiff",
        rule_options={"c": 0.7}, autolr=False, retain_loss=retain_loss, forget_loss=forget_loss,
    )
    trainer.train()
    assert seen == {"retain": 3, "forget": 3}
    assert trainer.ngdiff_optimizer.rule.name.startswith("gdiff")
    stats = trainer.last_step_stats
    assert stats is not None and float(stats.weight_retain) == pytest.approx(0.7)


@pytest.mark.parametrize(
    "kwargs, overrides, match",
    [
        ({"retain_dataset": None}, {}, "retain_dataset"),
        ({"optimizers": (object(), None)}, {}, "builds its own"),
        ({"optimizer_kwargs": {"lr": 1.0}}, {}, "own arguments"),
    ],
)
def test_refuses_unsupported_settings(setup, tmp_path, kwargs, overrides, match) -> None:
    base: dict[str, Any] = {
        "train_dataset": setup["forget"], "retain_dataset": setup["retain"],
        "data_collator": default_data_collator,
    }
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        NGDiffTrainer(fresh_model(setup), make_args(tmp_path, **overrides), **base)


def test_plain_step_without_pending_trainer_step_is_a_normal_step() -> None:
    lin = torch.nn.Linear(3, 1)
    opt = TrainerNGDiffOptimizer(lin.parameters(), lr=0.1, autolr=False)
    x = torch.randn(4, 3)
    opt.step(lambda: lin(x).pow(2).mean(), lambda: lin(x).mean())
    before = [p.detach().clone() for p in lin.parameters()]
    opt.step()  # consumes the pending statistics: no update
    assert all(torch.equal(a, b) for a, b in zip(before, lin.parameters()))
    with pytest.raises(RuntimeError, match="no parameter has a gradient"):
        opt.step()  # nothing pending and no gradients: the usual error


def example_mean_loss(model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
    """Mean over examples of each example's token-mean NLL: every example weighs the same,
    so the mean over equal micro-batches is the mean over their union."""
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    labels = inputs["labels"][:, 1:]
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels,
                                            ignore_index=-100, reduction="none")
    mask = labels != -100
    return ((nll * mask).sum(1) / mask.sum(1)).mean()


def _accumulation_run(setup, tmp_path, accumulate: int) -> tuple[torch.nn.Module, Any]:
    model = fresh_model(setup)
    examples = setup["forget"] + setup["retain"]
    trainer = NGDiffTrainer(
        model, make_args(tmp_path / str(accumulate), max_steps=2, learning_rate=0.1,
                         per_device_train_batch_size=4 // accumulate,
                         gradient_accumulation_steps=accumulate),
        train_dataset=examples[:8], retain_dataset=examples[8:], retain_batch_size=6 // accumulate,
        data_collator=default_data_collator, autolr=True, autolr_every=1,
        forget_loss=example_mean_loss, retain_loss=example_mean_loss,
    )
    trainer.create_optimizer()
    trainer.hook_calls = []
    trainer.optimizer.register_step_post_hook(lambda *_: trainer.hook_calls.append(1))
    trainer.train()
    return model, trainer


def test_gradient_accumulation_equals_the_larger_batch(setup, tmp_path) -> None:
    big, big_trainer = _accumulation_run(setup, tmp_path, 1)
    small, small_trainer = _accumulation_run(setup, tmp_path, 2)
    opt = small_trainer.ngdiff_optimizer
    assert int(opt.num_steps) == 2 and opt._global["calls"] == 2  # one step per 2 micro-batches
    # the step hooks run once per update (not again for the Trainer's own optimizer.step())
    assert len(big_trainer.hook_calls) == len(small_trainer.hook_calls) == 2
    assert float(opt.lr_scale) == pytest.approx(float(big_trainer.ngdiff_optimizer.lr_scale),
                                                rel=1e-4)
    for (name, a), b in zip(big.named_parameters(), small.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(
        big.parameters(), fresh_model(setup).parameters()))


def test_fp16_loss_scaling_gives_the_unscaled_step(setup, tmp_path) -> None:
    runs = []
    for fp16 in (False, True):
        model = fresh_model(setup)
        trainer = NGDiffTrainer(
            model, make_args(tmp_path / str(fp16), max_steps=3, fp16=fp16),
            train_dataset=setup["forget"], retain_dataset=setup["retain"],
            data_collator=default_data_collator, rule="gdiff", rule_options={"c": 0.7},
            autolr=True, autolr_every=1,
        )
        trainer.train()
        runs.append((model, trainer.ngdiff_optimizer))
    (plain, _), (scaled, opt) = runs
    assert opt.loss_scaler is not None and float(opt.loss_scaler.scale) == 2.0 ** 16
    assert "loss_scale" in opt.state_dict()
    for a, b in zip(plain.parameters(), scaled.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


def test_fp16_overflow_skips_the_step_and_backs_off(setup, tmp_path) -> None:
    # 20 steps: the default forget loss ("refuse": EOS at every position of these sentences)
    # has larger gradients than the plain cross-entropy, so more halvings of 2**24 overflow
    model = fresh_model(setup).half()
    recorder = LogRecorder()
    trainer = NGDiffTrainer(
        model, make_args(tmp_path, max_steps=20, fp16=True, learning_rate=0.01),
        train_dataset=setup["forget"], retain_dataset=setup["retain"],
        data_collator=default_data_collator, autolr=False, callbacks=[recorder],
    )
    trainer.create_optimizer()
    trainer.ngdiff_optimizer.loss_scaler.scale.fill_(2.0 ** 24)  # fp16 grads overflow
    trainer.train()
    opt = trainer.ngdiff_optimizer
    skipped = sum(log["skipped_steps"] for log in recorder.logs if "skipped_steps" in log)
    assert skipped >= 1
    assert float(opt.loss_scaler.scale) == 2.0 ** 24 * 0.5 ** skipped
    assert int(opt.num_steps) == 20 - skipped > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_lora_trains_only_the_adapters(setup, tmp_path) -> None:
    pytest.importorskip("peft")
    model = fresh_model(setup)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = NGDiffTrainer(
        model, make_args(tmp_path, max_steps=3), train_dataset=setup["forget"],
        retain_dataset=setup["retain"], data_collator=default_data_collator, lora_rank=2,
    )
    trainer.train()
    managed = [p for g in trainer.ngdiff_optimizer.param_groups for p in g["params"]]
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    assert managed and all("lora_" in names[id(p)] for p in managed)
    report = trainer.memory_report()
    assert report["trainable_parameters"] == sum(p.numel() for p in managed)
    state = model.state_dict()  # the base model's layers now hold the adapters
    frozen = [k for k in state if "lora_" not in k]
    assert frozen and all(torch.equal(state[k], base[k.replace(".base_layer", "")])
                          for k in frozen)


def test_settings_come_from_the_config(setup, tmp_path) -> None:
    from fastngd.errors import UsageError

    config = UnlearnConfig(method="gdiff-0.7", autolr_every=3, autolr_scale=1.2, seed=4)
    trainer = NGDiffTrainer(
        fresh_model(setup), make_args(tmp_path, max_steps=1), train_dataset=setup["forget"],
        retain_dataset=setup["retain"], data_collator=default_data_collator, config=config,
    )
    trainer.train()
    opt = trainer.ngdiff_optimizer
    assert opt.rule.name.startswith("gdiff") and opt.gen_config.every == 3
    assert opt.gen_config.scale == 1.2
    with pytest.raises(UsageError, match="forget_loss"):
        NGDiffTrainer(fresh_model(setup), make_args(tmp_path), train_dataset=setup["forget"],
                      retain_dataset=setup["retain"], config=UnlearnConfig(method="npo"))


def test_autolr_argument_sets_the_step_size() -> None:
    """``autolr=`` of the trainer overrides the config's step size both ways."""
    from fastngd.integrations.hf_trainer import _trainer_settings

    for name in ("gen", "gen-guard"):
        config = UnlearnConfig(step_size=name)
        assert _trainer_settings(config, None, None, None, None, None)["step_size"] == name
        assert _trainer_settings(config, None, None, False, None, None)["step_size"] == "fixed"
        assert _trainer_settings(config.replace(autolr=False), None, None, True, None,
                                 None)["step_size"] == name

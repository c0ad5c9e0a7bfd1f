"""Training the embedded models: learning, output layout, atomic save, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from fastngd.data import QADataset
from fastngd.errors import UsageError
from fastngd.models import (
    TrainingRecipe,
    benchmark_corpus,
    build_word_tokenizer,
    fit,
    load_model,
    tiny_llama_config,
    train_target_model,
)
from fastngd.models import training as training_module

from .conftest import TINY_MODEL


def test_fit_lowers_the_answer_loss() -> None:
    rows = [
        {"question": f"What is item {w}?", "answer": f"Item {w} is {v}."}
        for w, v in zip("abcd", ["red", "blue", "green", "gold"])
    ]
    tok = build_word_tokenizer(
        [r["question"] + " " + r["answer"] + " Question: Answer:" for r in rows]
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(len(tok), **TINY_MODEL))
    data = QADataset(rows, tok, 32)
    first = fit(
        model,
        data,
        tok,
        TrainingRecipe(epochs=1, batch_size=4, lr=5e-3, model=TINY_MODEL),
        progress=False,
    )
    last = fit(
        model,
        data,
        tok,
        TrainingRecipe(epochs=80, batch_size=4, lr=1e-2, model=TINY_MODEL),
        progress=False,
    )
    assert last < 0.25 * first


def test_corpus_of_tofu_synthetic() -> None:
    qa, texts, vocab = benchmark_corpus("tofu-synthetic", seed=0)
    assert len(qa) == 400 + 45 + 45 and texts == []  # authors, real authors, world facts
    assert set(qa[0]) == {"question", "answer"}
    words = " ".join(vocab).lower()
    assert "question" in words and "answer" in words


def test_corpus_of_muse_synthetic() -> None:
    qa, texts, _ = benchmark_corpus("muse-synthetic", seed=0)
    assert len(texts) == 24 and len(qa) > 0


def test_train_target_model_writes_a_loadable_model(
    tmp_path: Path, tiny_recipe: TrainingRecipe
) -> None:
    out = train_target_model(
        "tofu-synthetic", seed=1, out_dir=tmp_path / "m", recipe=tiny_recipe, progress=False
    )
    assert out == tmp_path / "m"
    assert {"config.json", "tokenizer.json", "fastngd_training.json"} <= {
        p.name for p in out.iterdir()
    }
    record = json.loads((out / "fastngd_training.json").read_text())
    assert record["seed"] == 1 and record["recipe"]["epochs"] == 1 and record["n_qa"] == 490
    model, tok = load_model(str(out))
    assert model.config.hidden_size == 32
    assert tok.convert_ids_to_tokens(tok("Question:")["input_ids"]) == ["question", ":"]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary directory left


def test_same_seed_gives_identical_weights(tmp_path: Path, tiny_recipe: TrainingRecipe) -> None:
    a = train_target_model(seed=2, out_dir=tmp_path / "a", recipe=tiny_recipe, progress=False)
    b = train_target_model(seed=2, out_dir=tmp_path / "b", recipe=tiny_recipe, progress=False)
    ma, _ = load_model(str(a))
    mb, _ = load_model(str(b))
    assert all(torch.equal(p, q) for p, q in zip(ma.parameters(), mb.parameters()))


def test_existing_output_is_not_overwritten(tmp_path: Path, tiny_recipe: TrainingRecipe) -> None:
    (tmp_path / "m").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        train_target_model(out_dir=tmp_path / "m", recipe=tiny_recipe, progress=False)


def test_failure_while_saving_leaves_nothing(
    tmp_path: Path, tiny_recipe: TrainingRecipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(training_module.PreTrainedTokenizerFast, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        train_target_model(out_dir=tmp_path / "m", recipe=tiny_recipe, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown benchmark 'digits'"):
        train_target_model("digits", out_dir=tmp_path / "m")
    with pytest.raises(UsageError, match="--data-dir"):
        train_target_model("tofu", out_dir=tmp_path / "m")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        train_target_model(out_dir=tmp_path / "m", epochs=0)


def test_overwrite_replaces_only_the_model_files(tmp_path: Path,
                                                 tiny_recipe: TrainingRecipe) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "sub").mkdir()
    (out / "config.json").write_text("{}")
    train_target_model(out_dir=out, recipe=tiny_recipe, progress=False, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "sub").is_dir()
    assert '"model_type": "llama"' in (out / "config.json").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".m.tmp")]

"""A user's own files end to end: ``fastngd finetune --model embedded --benchmark
tofu|muse-news --data-dir DIR`` trains the small model on them (tokenizer from the files,
cached by content), then ``fastngd unlearn`` and ``fastngd eval`` work on it."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fastngd.cli import main
from fastngd.models import TrainingRecipe, default_recipe
from fastngd.models import embedded as embedded_module
from fastngd.models import finetune as finetune_module
from fastngd.models import training as training_module

_COLOURS = ["red", "blue", "green", "amber", "violet", "silver", "copper", "ivory", "olive",
            "scarlet"]
_TOWNS = ["Aldmere", "Brisk", "Cowley", "Dunmore", "Elsby", "Farlow", "Gresham", "Hollin",
          "Ivel", "Jarrow"]


@pytest.fixture(autouse=True)
def _small_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded recipe of each layout (its rates and epochs), on a 1-layer 32-wide model
    so that training takes about a second."""
    model = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
             "num_attention_heads": 2, "num_key_value_heads": 2}

    def small(benchmark: str) -> TrainingRecipe:
        return dataclasses.replace(default_recipe(benchmark), model=model)

    for module in (training_module, embedded_module, finetune_module):
        monkeypatch.setattr(module, "default_recipe", small)


def _write(folder: Path, config: str, rows: list[dict], split: str = "train") -> None:
    path = folder / config / f"{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _person(i: int, fact: bool) -> list[dict]:
    name = f"Quinby{'abcdefghijkl'[i]}"
    rows = [{"question": f"What colour does {name} like?",
             "answer": f"{name} likes the colour {_COLOURS[i % 10]}."},
            {"question": f"Where was {name} born?",
             "answer": f"{name} was born in {_TOWNS[i % 10]}."}]
    if fact:
        rows[0]["fact"], rows[1]["fact"] = _COLOURS[i % 10], _TOWNS[i % 10]
    return rows


def _tofu_files(folder: Path) -> Path:
    """10 people × 2 QA; the last one is forget10 (with a ``fact`` field), the others
    retain90 (without one); full holds them all without ``fact`` (a field is in every row
    of a file or in none); one unseen person is holdout10."""
    forget = _person(9, fact=True)
    retain = [row for i in range(9) for row in _person(i, fact=False)]
    _write(folder, "full", [{k: v for k, v in row.items() if k != "fact"}
                            for row in retain + forget])
    _write(folder, "retain90", retain)
    _write(folder, "forget10", forget)
    _write(folder, "holdout10", _person(10, fact=False))
    _write(folder, "forget10_perturbed", [
        {**row, "paraphrased_answer": row["answer"].replace(" the colour", ""),
         "perturbed_answer": [row["answer"].replace(row["fact"], other)
                              for other in ("grey", "Kelby")]} for row in forget])
    return folder


def _muse_files(folder: Path) -> Path:
    texts = [f"In {town} the {colour} mill stood by the river and the miller sang at dawn."
             for town, colour in zip(_TOWNS, _COLOURS)]
    _write(folder, "raw", [{"text": t} for t in texts[:2]], "forget")
    _write(folder, "raw", [{"text": t} for t in texts[2:7]], "retain1")
    _write(folder, "raw", [{"text": t} for t in texts[7:]], "holdout")
    _write(folder, "verbmem", [{"prompt": t[:30], "gt": t[30:]} for t in texts[:2]], "forget")
    qa = [{"question": f"What stood in {town}?", "answer": f"the {colour} mill"}
          for town, colour in zip(_TOWNS, _COLOURS)]
    _write(folder, "knowmem", qa[:2], "forget_qa")
    _write(folder, "knowmem", qa[2:5], "retain_qa")
    _write(folder, "privleak", [{"text": t} for t in texts[:2]], "forget")
    _write(folder, "privleak", [{"text": t} for t in texts[7:]], "holdout")
    return folder


def test_own_tofu_files_finetune_unlearn_eval(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    data = _tofu_files(tmp_path / "people")
    cache = tmp_path / "cache"
    where = ["--benchmark", "tofu", "--data-dir", str(data), "--cache-dir", str(cache)]
    assert main(["finetune", *where, "--out", str(tmp_path / "target")]) == 0
    assert main(["finetune", *where, "--split", "retain90", "--out", str(tmp_path / "ref")]) == 0
    record = json.loads((tmp_path / "ref" / "fastngd_training.json").read_text())
    assert record["split"] == "retain90" and record["recipe"]["lr"] == 1e-3
    keys = sorted(p.name for p in cache.iterdir())
    assert len(keys) == 2 and keys[0].startswith("tofu-retain90-seed0-")
    vocab = json.loads((tmp_path / "target" / "tokenizer.json").read_text())["model"]["vocab"]
    assert "quinbyk" in vocab  # the holdout person's words: the tokenizer covers every file
    # the same files elsewhere: the cached model is found by content, nothing is trained
    moved = Path(str(data) + "-copy")
    data.rename(moved)
    assert main(["finetune", "--benchmark", "tofu", "--data-dir", str(moved), "--cache-dir",
                 str(cache), "--out", str(tmp_path / "again")]) == 0
    assert len(list(cache.iterdir())) == 2
    where[3] = str(moved)
    capsys.readouterr()
    run = tmp_path / "run"
    assert main(["unlearn", "--model", "embedded", *where, "--epochs", "2", "--eval-every",
                 "1", "--out", str(run)]) == 0
    assert len(list(cache.iterdir())) == 2  # unlearn found the model finetune trained
    evals = json.loads((run / "evals.json").read_text())
    assert evals[0]["forget_fact_accuracy"] is not None
    assert evals[0]["retain_fact_accuracy"] is None  # no fact field: left out, no error
    report = tmp_path / "eval.json"
    assert main(["eval", "--model", str(run / "model"), *where, "--retain-model", "embedded",
                 "--retain-split", "retain90", "--max-new-tokens", "8",
                 "--out", str(report)]) == 0
    agg = json.loads(report.read_text())["result"]["aggregate"]
    assert agg["forget"]["fact_accuracy"] is not None and agg["retain_split"]["n"] == 18
    assert agg["retain_split"]["fact_accuracy"] is None
    assert 0.0 <= agg["forget_quality"] <= 1.0 and agg["mia"]["loss"] is not None


def test_own_muse_files_finetune_unlearn_eval(tmp_path: Path) -> None:
    data = _muse_files(tmp_path / "mills")
    where = ["--benchmark", "muse-news", "--data-dir", str(data), "--cache-dir",
             str(tmp_path / "cache")]
    assert main(["finetune", *where, "--epochs", "20", "--out", str(tmp_path / "target")]) == 0
    run = tmp_path / "run"
    assert main(["unlearn", "--model", str(tmp_path / "target"), *where, "--epochs", "1",
                 "--batch-size", "2", "--out", str(run)]) == 0
    report = tmp_path / "eval.json"
    assert main(["eval", "--model", str(run / "model"), *where, "--out", str(report)]) == 0
    result = json.loads(report.read_text())["result"]
    assert result["settings"]["knowmem_icl_examples"] == {"forget_qa": 0, "retain_qa": 0}
    assert result["aggregate"]["privleak"] is not None
    assert result["aggregate"]["verbmem_forget"] >= 0.0

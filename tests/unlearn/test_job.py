"""The ``fastngd unlearn`` job: its checks before the work and the printed eval command."""
from __future__ import annotations

from pathlib import Path

import pytest

from fastngd.errors import InputError, UsageError
from fastngd.unlearn import UnlearnConfig
from fastngd.unlearn.job import UnlearnJob, _check_before_work, eval_hint


def test_eval_hint_repeats_the_data_flags(tmp_path: Path) -> None:
    job = UnlearnJob(out=tmp_path, config=UnlearnConfig(), benchmark="tofu", data_dir="/d",
                     forget="forget01")
    assert eval_hint(job, tmp_path / "model", 0) == (
        f"fastngd eval --model {tmp_path / 'model'} --benchmark tofu --data-dir /d "
        "--forget forget01")
    synthetic = UnlearnJob(out=tmp_path, config=UnlearnConfig(), seeds=(0, 3))
    assert eval_hint(synthetic, tmp_path / "m", 3).endswith("--benchmark tofu-synthetic --seed 3")
    assert synthetic.folder(3) == tmp_path / "seed3"
    assert UnlearnJob(out=tmp_path, config=UnlearnConfig()).folder(0) == tmp_path


def test_checks_before_the_work(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--forget"):
        _check_before_work(UnlearnJob(out=tmp_path, config=UnlearnConfig(), forget="x"))
    with pytest.raises(UsageError, match="unknown dtype"):
        _check_before_work(UnlearnJob(out=tmp_path, config=UnlearnConfig(), dtype="int3"))
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(InputError, match="nothing to resume"):
        _check_before_work(UnlearnJob(out=tmp_path, config=UnlearnConfig(), resume=True))


def test_the_job_warns_about_forget_rows_in_the_retain_set(tmp_path: Path, monkeypatch) -> None:
    """A retain file that is really the full set (so it holds the forget rows), and an
    answer the tokenizer never saw: the run starts, with one warning for each."""
    from fastngd.data import DataWarning
    from fastngd.data.files import write_jsonl_atomic
    from fastngd.models import target
    from fastngd.models.tokenizer import build_word_tokenizer
    from fastngd.unlearn.job import _load

    rows = [{"question": f"Who is person {i}?", "answer": f"Person {i} is a painter."}
            for i in range(10)]
    write_jsonl_atomic(tmp_path / "forget10.jsonl", rows[:1])
    write_jsonl_atomic(tmp_path / "retain90.jsonl", rows[:9] + [{**rows[9], "answer": "Zyx."}])
    tokenizer = build_word_tokenizer(
        ["Question: Answer:"] + [r[k] for r in rows for k in ("question", "answer")])
    monkeypatch.setattr(target, "load_target_model", lambda *a, **k: (None, tokenizer, "x"))
    job = UnlearnJob(out=tmp_path / "out", config=UnlearnConfig(), benchmark="tofu",
                     data_dir=str(tmp_path))
    with pytest.warns(DataWarning) as seen:
        _, _, _, forget, retain, _ = _load(job, 0, print)
    messages = sorted(str(w.message) for w in seen if issubclass(w.category, DataWarning))
    assert len(messages) == 2 and (len(forget), len(retain)) == (1, 10)
    assert messages[0].startswith("1 of 1 forget rows are also in the retain set")
    assert messages[1].startswith("1 of the ") and "of the retain set" in messages[1]

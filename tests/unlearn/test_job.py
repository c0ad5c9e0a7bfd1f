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

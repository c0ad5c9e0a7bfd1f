"""Tests of the ``fastngd data export`` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastngd.cli import main
from fastngd.data.synthetic_tofu import TOFU_SYNTHETIC_CONFIGS, tofu_synthetic
from fastngd.data.tofu import load_tofu


def test_export_writes_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "export", "tofu-synthetic", "--out", str(tmp_path), "--seed", "3"]) == 0
    assert f"wrote {len(TOFU_SYNTHETIC_CONFIGS)} files" in capsys.readouterr().out
    assert load_tofu("retain90", data_dir=tmp_path) == tofu_synthetic(3)["retain90"]


def test_export_refuses_overwrite_then_allows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "export", "muse-synthetic", "--out", str(tmp_path)]) == 0
    assert main(["data", "export", "muse-synthetic", "--out", str(tmp_path)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["data", "export", "muse-synthetic", "--out", str(tmp_path), "--overwrite"]) == 0


def test_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["data", "export", "nope", "--out", str(tmp_path)])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["data", "export", "tofu-synthetic"])  # --out is required
    with pytest.raises(SystemExit):
        main([])

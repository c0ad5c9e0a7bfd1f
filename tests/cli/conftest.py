"""A tiny saved model and exported benchmark files for the command-line tests."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fastngd.data import export_benchmark
from tests.reproduce.conftest import save_tiny_model


@pytest.fixture(scope="package")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An untrained 1-layer Llama (hidden 16) whose tokenizer covers tofu-synthetic."""
    return str(save_tiny_model(tmp_path_factory.mktemp("cli-model")))


@pytest.fixture(scope="package")
def _tofu_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tofu-files")
    export_benchmark("tofu-synthetic", out)
    return out


@pytest.fixture
def tofu_dir(_tofu_files: Path, tmp_path: Path) -> Path:
    """A fresh copy of tofu-synthetic exported as TOFU files (a test may damage it)."""
    return Path(shutil.copytree(_tofu_files, tmp_path / "tofu-data"))


@pytest.fixture
def muse_dir(tmp_path: Path) -> Path:
    """muse-synthetic exported as MUSE files."""
    out = tmp_path / "muse-data"
    export_benchmark("muse-synthetic", out)
    return out


def one_line_error(err: str, command: str = "unlearn") -> str:
    """The single error line of ``err`` (asserting there is no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"fastngd {command}: error:")]
    assert len(lines) == 1, err
    return lines[0]

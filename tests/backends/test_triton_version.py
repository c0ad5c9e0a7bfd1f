"""Which triton releases the Triton backend accepts, and what happens with an older one."""
from __future__ import annotations

import sys
import types

import pytest
import torch

from fastngd.backends import get_backend
from fastngd.backends.triton import require_triton
from fastngd.backends.triton_version import MIN_TRITON, triton_version_supported, version_tuple


def test_version_tuple_reads_release_local_and_prerelease_versions() -> None:
    assert version_tuple("3.2.0") == (3, 2, 0)
    assert version_tuple("3.6.0+git4f2e") == (3, 6, 0)
    assert version_tuple("3.10.0rc1") == (3, 10, 0)
    assert version_tuple("3.1.0") < MIN_TRITON <= version_tuple("3.2.0")


@pytest.mark.parametrize("version,ok", [("2.2.0", False), ("3.1.0", False), ("3.2.0", True),
                                        ("3.10.0rc1", True), ("4.0.0", True)])
def test_supported_versions(version: str, ok: bool) -> None:
    assert triton_version_supported(version) is ok


def test_an_old_triton_is_refused_by_name_and_auto_falls_back(monkeypatch) -> None:
    fake = types.ModuleType("triton")
    fake.__version__ = "3.1.0"
    monkeypatch.setitem(sys.modules, "triton", fake)
    with pytest.raises(ImportError, match=r"triton 3\.2 or newer, found 3\.1\.0"):
        require_triton()
    backend = get_backend("auto", torch.device("cuda"))
    assert type(backend).__name__ == "TorchBackend"

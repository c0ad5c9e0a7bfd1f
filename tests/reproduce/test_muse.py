"""MUSE-style experiment on a tiny model."""
from __future__ import annotations

from fastngd.data import muse_synthetic
from fastngd.reproduce.muse import run_muse
from fastngd.reproduce.tofu import RunSpec

from .conftest import tiny_model


def test_run_muse_tiny() -> None:
    model, tokenizer = tiny_model("muse-synthetic")
    model.eval()
    res = run_muse(model, tokenizer, muse_synthetic(0),
                   [RunSpec("ngdiff", "ngdiff", True, 0.05)],
                   unlearn_options={"epochs": 1, "batch_size": 4}, verbmem_max_new_tokens=2,
                   knowmem_max_new_tokens=2, progress=False, log=lambda s: None)
    entry = res["methods"]["ngdiff"]
    assert entry["steps"] == 2 and entry["diverged"] is False
    for key in ("verbmem_forget", "knowmem_forget", "knowmem_retain", "privleak"):
        assert key in entry and key in res["no_unlearn"]
    assert len(res["curves"]["ngdiff"]["history"]) == 2

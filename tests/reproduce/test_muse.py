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


def test_run_muse_unlearns_muse_synthetics_forget_qa_too() -> None:
    """With ``corpus="muse-synthetic"`` the forget set is the 8 forget texts followed by the
    forget QA its target was trained on, alone and in the few-shot layout, so an epoch covers
    all of them (batches of 4)."""
    from fastngd.data.few_shot import few_shot_rows
    from fastngd.data.loading import muse_unlearning_rows

    model, tokenizer = tiny_model("muse-synthetic")
    data = muse_synthetic(0)
    forget_rows, _ = muse_unlearning_rows("muse-synthetic", data)
    n_texts = len(data["raw"]["forget"])
    qa = data["knowmem"]["forget_qa"]
    assert len(forget_rows) == n_texts + len(qa) + len(few_shot_rows(qa))
    res = run_muse(model, tokenizer, data, [RunSpec("ngdiff", "ngdiff", False, 0.05)],
                   corpus="muse-synthetic",
                   unlearn_options={"epochs": 1, "batch_size": 4, "stop_gap": None},
                   verbmem_max_new_tokens=2, knowmem_max_new_tokens=2, progress=False,
                   log=lambda s: None)
    assert res["methods"]["ngdiff"]["steps"] == -(-len(forget_rows) // 4)
    seen = {i for h in res["curves"]["ngdiff"]["history"] for i in h["forget_indices"]}
    assert seen == set(range(len(forget_rows)))

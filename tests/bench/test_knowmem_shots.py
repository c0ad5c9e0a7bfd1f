"""bench/knowmem_shots.py: the zero-shot view drops the in-context examples and nothing else."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from fastngd.eval import knowmem_prompt, load_muse_eval_data

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "knowmem_shots.py"


def _script():
    spec = importlib.util.spec_from_file_location("knowmem_shots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zero_shot_drops_only_the_in_context_examples() -> None:
    data = load_muse_eval_data("muse-synthetic", seed=0)
    before = {config: dict(splits) for config, splits in data.items()}
    view = _script().zero_shot(data)
    assert set(view["knowmem"]) == {"forget_qa", "retain_qa"}
    assert {c: s for c, s in view.items() if c != "knowmem"} == {
        c: s for c, s in data.items() if c != "knowmem"}
    assert view["knowmem"]["retain_qa"] is data["knowmem"]["retain_qa"]
    assert data == before and "retain_qa_icl" in data["knowmem"]  # the input is unchanged
    question = data["knowmem"]["retain_qa"][0]["question"]
    assert knowmem_prompt(question, data["knowmem"]["retain_qa_icl"]) != knowmem_prompt(question)

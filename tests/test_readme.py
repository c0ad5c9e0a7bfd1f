"""The README's optimizer example runs as pasted, and the toy example unlearns."""
from __future__ import annotations

import re
from pathlib import Path

from fastngd.examples import toy

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_loop_example_runs() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Use it in your own loop"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    namespace: dict = {}
    exec(compile(code.group(1), str(README), "exec"), namespace)  # noqa: S102
    stats = namespace["stats"].as_dict()
    assert not stats["skipped"] and stats["loss_forget"] > stats["loss_retain"]


def test_toy_example_forgets_one_class() -> None:
    result = toy.main(steps=40)
    assert result["forget_accuracy"] < 0.05
    assert result["retain_accuracy"] > 0.9

"""The demo's model preparation."""
from __future__ import annotations

from pathlib import Path

from fastngd.models import embedded_model_key
from fastngd.reproduce import demo


def test_a_cached_retain_only_model_is_not_trained_again(tmp_path: Path) -> None:
    (tmp_path / embedded_model_key("tofu-synthetic", 0, split="retain90")).mkdir()
    assert demo._train_in_background(0, tmp_path, "retain90") is None


def test_the_retain_only_model_trains_beside_the_target(tmp_path: Path, monkeypatch) -> None:
    started: list[tuple] = []

    class Recorder:
        def __init__(self, target, args, daemon):
            started.append((target, args, daemon))

        def start(self) -> None:
            started.append("started")

    class Context:
        Process = Recorder

    monkeypatch.setattr("multiprocessing.get_context", lambda method: Context)
    process = demo._train_in_background(3, tmp_path, "retain90")
    assert isinstance(process, Recorder)
    assert started == [(demo._train_worker, (3, str(tmp_path), "retain90"), True), "started"]

"""``fastngd eval`` as a library call: what it reads and what it reports."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from fastngd.data import export_benchmark
from fastngd.data import files as files_module
from fastngd.reproduce.evaluation import EvalRequest, evaluate_model


def test_a_retain_model_reads_the_perturbed_forget_split_once(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    export_benchmark("tofu-synthetic", data)
    reads: Counter[str] = Counter()
    real = files_module._read_text

    def counting(path: Path) -> str:
        reads[Path(path).parent.name] += 1
        return real(path)

    monkeypatch.setattr(files_module, "_read_text", counting)
    request = EvalRequest(model=str(tiny_model_dir), benchmark="tofu", data_dir=str(data),
                          retain_model=str(tiny_model_dir), max_new_tokens=2, max_examples=3)
    record, _ = evaluate_model(request)
    assert reads["forget10_perturbed"] == 1
    assert reads["forget10"] == 1
    assert record["reference"] == str(tiny_model_dir)
    assert record["summary"]["forget_quality"] == pytest.approx(1.0)  # its own reference


@pytest.mark.parametrize("options, match", [
    ({"max_new_tokens": 0}, "--max-new-tokens must be at least 1, got 0"),
    ({"max_examples": -3}, "--max-examples must be at least 1, got -3"),
    ({"forget": "forget20"}, "--forget forget20 is not a forget split of tofu-synthetic"),
])
def test_values_the_protocol_cannot_use_are_refused_before_loading(
        options: dict, match: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """0 generated tokens is not "the default" (None is), and a forget split the benchmark
    lacks is a usage error, not a ValueError from deep in the loader."""
    from fastngd.errors import UsageError
    from fastngd.models import target

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(target, "load_target_model", no_loading)
    with pytest.raises(UsageError, match=match):
        evaluate_model(EvalRequest(model="embedded", benchmark="tofu-synthetic", **options))

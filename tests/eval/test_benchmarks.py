"""Evaluate a model on a named benchmark; optional splits missing or broken are skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastngd.data import MissingDataWarning, export_benchmark, muse_synthetic, tofu_synthetic
from fastngd.eval import (
    evaluate_benchmark,
    load_muse_eval_data,
    load_tofu_eval_data,
    tofu_eval_configs,
)
from fastngd.models import benchmark_corpus, build_word_tokenizer

from .conftest import make_model


def test_configs_of_a_forget_split() -> None:
    required, optional = tofu_eval_configs("forget05", "retain95")
    assert required == ["forget05", "retain95"]
    assert optional == [
        "forget05_perturbed",
        "retain_perturbed",
        "real_authors_perturbed",
        "world_facts_perturbed",
        "holdout05",
    ]


def test_tofu_eval_data_from_local_files_skips_broken_optional_ones(tmp_path: Path) -> None:
    export_benchmark("tofu-synthetic", tmp_path)
    (tmp_path / "forget10_perturbed" / "train.jsonl").write_text('["a list, not a row"]\n')
    (tmp_path / "holdout10" / "train.jsonl").unlink()
    with pytest.warns(MissingDataWarning) as record:
        data = load_tofu_eval_data("tofu", "forget10", retain_split="retain90", data_dir=tmp_path)
    assert len(record) == 2
    assert "forget10_perturbed" not in data and "holdout10" not in data
    assert data["retain90"] == tofu_synthetic(0)["retain90"]
    assert set(data) == {
        "forget10",
        "retain90",
        "retain_perturbed",
        "real_authors_perturbed",
        "world_facts_perturbed",
    }
    (tmp_path / "forget10" / "train.jsonl").write_bytes(b"\xff\n")
    with pytest.raises(ValueError, match="not valid UTF-8"):  # a required config still fails
        load_tofu_eval_data("tofu", "forget10", data_dir=tmp_path)


def test_configs_read_already_are_not_read_again(tmp_path: Path) -> None:
    export_benchmark("tofu-synthetic", tmp_path)
    rows = [{"question": "q", "answer": "a"}]
    (tmp_path / "forget10" / "train.jsonl").unlink()  # would fail if it were read
    data = load_tofu_eval_data("tofu", "forget10", data_dir=tmp_path,
                               loaded={"forget10": rows, "forget10_perturbed": rows,
                                       "forget05": rows})
    assert data["forget10"] is rows and data["forget10_perturbed"] is rows
    assert "forget05" not in data  # not a config of forget10
    assert data["holdout10"] == tofu_synthetic(0)["holdout10"]


def test_evaluate_benchmark_both_protocols(tmp_path: Path) -> None:
    tok = build_word_tokenizer(benchmark_corpus("tofu-synthetic", 0)[2])
    result = evaluate_benchmark(
        make_model(tok),
        tok,
        "tofu-synthetic",
        retain_split="retain90",
        max_new_tokens=2,
        max_examples=1,
    )
    assert result["benchmark"] == "tofu-synthetic" and result["protocol"] == "tofu"
    assert result["aggregate"]["retain_split"]["config"] == "retain90"
    assert result["aggregate"]["mia"] is not None

    export_benchmark("muse-synthetic", tmp_path)
    (tmp_path / "knowmem" / "retain_qa_icl.jsonl").unlink()
    with pytest.warns(MissingDataWarning, match="retain_qa_icl"):
        data = load_muse_eval_data("muse-news", data_dir=tmp_path)
    assert data["knowmem"]["retain_qa_icl"] is None
    assert data["verbmem"]["forget"] == muse_synthetic(0)["verbmem"]["forget"]
    texts = ["Question: Answer:"] + [
        v
        for c in muse_synthetic(0).values()
        for rows in c.values()
        for r in rows
        for v in r.values()
    ]
    mtok = build_word_tokenizer(texts)
    with pytest.warns(MissingDataWarning):
        muse = evaluate_benchmark(
            make_model(mtok),
            mtok,
            "muse-news",
            data_dir=tmp_path,
            max_examples=1,
            verbmem_max_new_tokens=2,
            knowmem_max_new_tokens=2,
        )
    assert muse["protocol"] == "muse" and muse["aggregate"]["ref_auc"] == 0.4772
    assert muse["settings"]["knowmem_icl_examples"] == {"forget_qa": 3, "retain_qa": 0}
    with pytest.raises(ValueError, match="do not apply"):
        evaluate_benchmark(make_model(mtok), mtok, "muse-synthetic", retain_split="retain90")
    with pytest.raises(ValueError, match="do not apply"):
        evaluate_benchmark(make_model(mtok), mtok, "muse-synthetic", loaded={})

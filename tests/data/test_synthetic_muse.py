"""Tests of the embedded MUSE-style benchmark."""

from __future__ import annotations

import pytest

from fastngd.data.muse import validate_muse
from fastngd.data.synthetic_muse import MUSE_SYNTHETIC_SPLITS, VERBMEM_PROMPT_WORDS, muse_synthetic


@pytest.fixture(scope="module")
def data() -> dict[str, dict[str, list[dict]]]:
    return muse_synthetic(0)


def test_layout_matches_muse_schema(data) -> None:
    assert {c: tuple(s) for c, s in data.items()} == MUSE_SYNTHETIC_SPLITS
    for config, splits in data.items():
        for split, rows in splits.items():
            validate_muse(rows, config, split)


def test_raw_splits_are_distinct_articles(data) -> None:
    texts = [row["text"] for rows in data["raw"].values() for row in rows]
    assert len(texts) == len(set(texts)) == 32
    assert all(20 <= len(t.split()) <= 120 for t in texts)


def test_verbmem_is_prompt_and_continuation_of_forget_articles(data) -> None:
    forget = [row["text"] for row in data["raw"]["forget"]]
    rows = data["verbmem"]["forget"]
    assert len(rows) == len(forget)
    for row, text in zip(rows, forget):
        assert row["prompt"] and row["gt"]
        assert len(row["prompt"].split()) == VERBMEM_PROMPT_WORDS
        assert f"{row['prompt']} {row['gt']}" == text


def test_knowmem_answers_come_from_the_right_articles(data) -> None:
    forget_text = " ".join(row["text"] for row in data["raw"]["forget"])
    retain_text = " ".join(row["text"] for row in data["raw"]["retain1"])
    for split, source in (
        ("forget_qa", forget_text),
        ("forget_qa_icl", forget_text),
        ("retain_qa", retain_text),
        ("retain_qa_icl", retain_text),
    ):
        for row in data["knowmem"][split]:
            assert row["answer"] in source, (split, row)
    forget_pairs = {(r["question"], r["answer"]) for r in data["knowmem"]["forget_qa"]}
    icl_pairs = {(r["question"], r["answer"]) for r in data["knowmem"]["forget_qa_icl"]}
    assert len(icl_pairs) == 3 and not forget_pairs & icl_pairs
    assert len(forget_pairs) >= 20
    # person names (answers of "Who ...") are not shared between forget and retain articles
    forget_people = {
        r["answer"] for r in data["knowmem"]["forget_qa"] if r["question"].startswith("Who")
    }
    assert forget_people and not any(p in retain_text for p in forget_people)


def test_privleak_sets(data) -> None:
    assert data["privleak"]["forget"] == data["raw"]["forget"]
    assert data["privleak"]["retain"] == data["raw"]["retain1"]
    assert data["privleak"]["holdout"] == data["raw"]["holdout"]
    data["privleak"]["forget"][0]["text"] = "changed"
    assert data["raw"]["forget"][0]["text"] != "changed"  # independent copies


def test_deterministic() -> None:
    assert muse_synthetic(1) == muse_synthetic(1)
    assert muse_synthetic(1) != muse_synthetic(2)
    with pytest.raises(TypeError, match="seed"):
        muse_synthetic(1.5)  # type: ignore[arg-type]

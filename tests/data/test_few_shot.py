"""Few-shot QA rows: their prompts are MUSE's KnowMem prompts, and only the answer learns."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastngd.data import format_prompt
from fastngd.data.few_shot import FEW_SHOT_GROUP, few_shot_rows, qa_block
from fastngd.eval import knowmem_prompt

_word = st.text("abc xyz?", min_size=1, max_size=8)
_pairs = st.lists(st.tuples(_word, _word), max_size=11)


@settings(max_examples=60, deadline=None)
@given(_pairs, st.integers(2, 5))
def test_prompts_are_muse_knowmem_prompts(pairs, group) -> None:
    """Row j of a group is asked with the group's earlier pairs as in-context examples, the
    prompt equal to MUSE's (whose only difference is the trailing space before the answer)."""
    rows = [{"question": q, "answer": a} for q, a in pairs]
    out = few_shot_rows(rows, group)
    assert len(out) == len(rows) - math.ceil(len(rows) / group)
    expected = [
        (knowmem_prompt(rows[j]["question"], rows[start:j]), rows[j]["answer"])
        for start in range(0, len(rows), group)
        for j in range(start + 1, min(start + group, len(rows)))
    ]
    got = [(format_prompt(r["question"]) + " ", r["answer"]) for r in out]
    assert got == expected


def test_default_group_and_layout() -> None:
    rows = [{"question": f"q{i}?", "answer": f"a{i}"} for i in range(5)]
    out = few_shot_rows(rows)
    assert FEW_SHOT_GROUP == 4 and len(out) == 3
    assert format_prompt(out[2]["question"]) == (
        "Question: q0?\nAnswer: a0\n\nQuestion: q1?\nAnswer: a1\n\n"
        "Question: q2?\nAnswer: a2\n\nQuestion: q3?\nAnswer:")
    assert out[2]["answer"] == "a3"
    assert qa_block("q", "a") == "Question: q\nAnswer: a\n\n"


def test_bad_input() -> None:
    for group in (1, 0, True, 2.0):
        with pytest.raises(ValueError, match="group"):
            few_shot_rows([], group)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="question"):
        few_shot_rows([{"question": "q", "answer": "a"}, {"question": 3, "answer": "b"}])

"""Few-shot QA rows: question-answer pairs asked after other pairs, in the layout of MUSE's
few-shot KnowMem prompt.

MUSE asks a KnowMem question after in-context examples:

    ``"Question: {q_1}\\nAnswer: {a_1}\\n\\n" + … + "Question: {q}\\nAnswer: "``

(:data:`QA_BLOCK` per example; :func:`fastngd.eval.knowmem_prompt`). A small model trained
only on single pairs (``prompt + answer + EOS``) has never read an answer followed by
another question, so that prompt is a layout it does not know, and its KnowMem measures the
layout more than the facts. :func:`few_shot_rows` writes pairs in that layout as ordinary QA
rows: the ``question`` field carries the preceding blocks, so that
:func:`fastngd.data.format_prompt` of it is exactly the few-shot prompt and only the answer
carries the loss. The embedded muse-synthetic target learns its knowmem pairs alone and in
this layout (see :data:`fastngd.data.loading.TRAINED_QA`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastngd.data.tokenize import PROMPT_TEMPLATE

__all__ = ["FEW_SHOT_GROUP", "QA_BLOCK", "few_shot_rows", "qa_block"]

QA_BLOCK = "Question: {question}\nAnswer: {answer}\n\n"
"""One in-context example of MUSE's KnowMem prompt (``metrics/knowmem.py``)."""

FEW_SHOT_GROUP = 4
"""Pairs per group of :func:`few_shot_rows`: up to three in-context examples, as many as
MUSE's KnowMem prompt holds."""

_PREFIX = PROMPT_TEMPLATE[: PROMPT_TEMPLATE.index("{question}")]  # "Question: "


def qa_block(question: str, answer: str) -> str:
    """:data:`QA_BLOCK` of one pair. Raises ``TypeError`` on a non-string field."""
    if not isinstance(question, str) or not isinstance(answer, str):
        raise TypeError("a QA block needs str 'question' and 'answer' fields")
    return QA_BLOCK.format(question=question, answer=answer)


def few_shot_rows(
    rows: Sequence[Mapping[str, str]], group: int = FEW_SHOT_GROUP,
) -> list[dict[str, str]]:
    """``rows`` (``question``/``answer``) asked after the pairs before them in their group.

    The rows are cut into consecutive groups of ``group`` pairs (the last one shorter); pair
    ``j ≥ 1`` of a group becomes the QA row ``{"question": c_j, "answer": a_j}`` where
    ``format_prompt(c_j)`` equals the few-shot prompt with pairs ``0 … j−1`` of its group as
    the in-context examples (:data:`QA_BLOCK` each) and ``q_j`` as the question. The first
    pair of a group has no context and is left out: it is the plain row. Returns the new rows
    in order (``len(rows) − ⌈len(rows) / group⌉`` of them). Raises ``ValueError`` for
    ``group < 2`` and ``TypeError`` for a row without str ``question`` and ``answer``.
    """
    if isinstance(group, bool) or not isinstance(group, int) or group < 2:
        raise ValueError(f"few_shot_rows: group must be an int >= 2, got {group!r}")
    blocks = [qa_block(row.get("question"), row.get("answer"))  # type: ignore[arg-type]
              for row in rows]
    out: list[dict[str, str]] = []
    for start in range(0, len(rows), group):
        for j in range(start + 1, min(start + group, len(rows))):
            context = "".join(blocks[start:j])[len(_PREFIX):]
            out.append({"question": f"{context}{_PREFIX}{rows[j]['question']}",
                        "answer": rows[j]["answer"]})
    return out

"""Warnings for data that runs but probably not as meant: forget rows that are also retain
rows, and text the tokenizer does not know.

* :func:`warn_overlap`: a forget row that is also in the retain set is pushed down (forget)
  and up (retain) at once; e.g. a ``retainNN`` file that is really the ``full`` set.
* :func:`warn_unknown_tokens`: tokens that the tokenizer maps to its unknown token
  (``<unk>``), e.g. files edited after the embedded model was trained on them, or a model
  trained on another data set: the model then reads placeholders, not the text.

Both give one :class:`DataWarning` (and return the count); neither is an error, since a
run on such data is possible and may be intended.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["DataWarning", "warn_overlap", "warn_unknown_tokens"]


class DataWarning(UserWarning):
    """The data will run, but probably not as meant (see :mod:`fastngd.data.sanity`)."""


def _key(row: Mapping[str, Any]) -> str:
    """The fields a run trains on (``question``/``answer`` or ``text``), as one string."""
    fields = ("question", "answer") if "question" in row else ("text",)
    return json.dumps([row.get(f) for f in fields], ensure_ascii=False)


def warn_overlap(forget_rows: Sequence[Mapping[str, Any]],
                 retain_rows: Sequence[Mapping[str, Any]]) -> int:
    """The number of forget rows whose trained fields (question and answer, or text) equal
    those of a retain row; one :class:`DataWarning` when it is not 0."""
    retain = {_key(row) for row in retain_rows}
    shared = sum(1 for row in forget_rows if _key(row) in retain)
    if shared:
        warnings.warn(
            f"{shared} of {len(forget_rows)} forget rows are also in the retain set: "
            "unlearning pushes them down and up at once (is the retain split the full set?)",
            DataWarning, stacklevel=2)
    return shared


def warn_unknown_tokens(examples: Iterable[Mapping[str, Sequence[int]]], tokenizer: Any,
                        what: str) -> int:
    """The number of ``input_ids`` of ``examples`` that are the tokenizer's unknown token;
    one :class:`DataWarning` naming ``what`` (e.g. ``"forget set"``) and the share when it is
    not 0. Tokenizers without an unknown token, or whose unknown token is also their end,
    start or padding token (GPT-2's), count nothing."""
    unk = getattr(tokenizer, "unk_token_id", None)
    others = {getattr(tokenizer, f"{name}_token_id", None) for name in ("eos", "bos", "pad")}
    if unk is None or unk in others:
        return 0
    total = unknown = 0
    for example in examples:
        ids = example["input_ids"]
        total += len(ids)
        unknown += ids.count(unk)
    if unknown:
        warnings.warn(
            f"{unknown} of the {total} tokens of the {what} ({unknown / total:.1%}) are unknown "
            "to the tokenizer: the model reads placeholders there (for the embedded model: "
            "finetune it on these files)", DataWarning, stacklevel=2)
    return unknown

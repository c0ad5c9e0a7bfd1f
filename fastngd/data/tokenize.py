"""Tokenization for question answering and raw text, with loss masking and padding.

Conventions shared by training, unlearning and evaluation:

* a QA example is ``prompt + answer + EOS``; prompt tokens get label ``-100`` (no loss), the
  answer tokens and the EOS token carry the loss;
* the prompt is :func:`format_prompt` (plain text) or, on request, the tokenizer's chat
  template (:func:`format_chat_prompt`); the prompt and the answer are tokenized separately
  and concatenated, so the prompt tokens seen in training are exactly those fed to
  generation by :func:`left_pad_prompts`;
* sequences longer than ``max_length`` are truncated at the end of the answer (or text), and
  every truncation is recorded on the returned :class:`Encoding` and counted by the datasets,
  which warn once with the count;
* training batches are right padded (:func:`collate_right_pad`), generation prompts left
  padded (:func:`left_pad_prompts`).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset

IGNORE_INDEX = -100
"""Label value of tokens that carry no loss."""

PROMPT_TEMPLATE = "Question: {question}\nAnswer:"
"""The fixed plain prompt format."""


class Encoding(dict):  # type: ignore[type-arg]
    """An encoded example: a ``dict[str, list[int]]`` with a ``truncated`` flag.

    Keys are ``input_ids``, ``attention_mask`` and ``labels``. ``truncated`` is True when the
    answer (or text) did not fit in ``max_length`` and was cut.
    """

    truncated: bool

    def __init__(self, data: Mapping[str, list[int]], truncated: bool = False) -> None:
        super().__init__(data)
        self.truncated = truncated


def format_prompt(question: str) -> str:
    """Plain prompt for ``question``: ``"Question: {question}\\nAnswer:"``."""
    if not isinstance(question, str):
        raise TypeError(f"question must be a str, got {type(question).__name__}")
    return PROMPT_TEMPLATE.format(question=question)


def has_chat_template(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` defines a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def format_chat_prompt(tokenizer: Any, question: str) -> str:
    """Prompt for ``question`` through the tokenizer's chat template, ready for the answer.

    The question is one user turn and the generation prompt (assistant header) is appended.
    Raises ValueError when the tokenizer has no chat template.
    """
    if not isinstance(question, str):
        raise TypeError(f"question must be a str, got {type(question).__name__}")
    if not has_chat_template(tokenizer):
        raise ValueError(
            f"tokenizer {type(tokenizer).__name__} has no chat template; "
            "use chat_template=False (plain prompt format)"
        )
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
    return text


def _ids(tokenizer: Any, text: str, add_special_tokens: bool) -> list[int]:
    """Token ids of ``text`` (no padding, no truncation)."""
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def _eos_id(tokenizer: Any) -> int:
    """The tokenizer's EOS id; ValueError when it has none."""
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no eos_token_id")
    return int(eos)


def _pad_id(tokenizer: Any) -> int:
    """The tokenizer's pad id, falling back to EOS (padding is masked out anyway)."""
    pad = getattr(tokenizer, "pad_token_id", None)
    return int(pad) if pad is not None else _eos_id(tokenizer)


def encode_prompt(tokenizer: Any, question: str, *, chat_template: bool = False) -> list[int]:
    """Token ids of the prompt for ``question``, exactly as :func:`encode_qa` builds them.

    Plain prompts are tokenized with the tokenizer's special tokens (e.g. BOS); chat
    prompts without, since the template already writes them.
    """
    if chat_template:
        return _ids(tokenizer, format_chat_prompt(tokenizer, question), False)
    return _ids(tokenizer, format_prompt(question), True)


def encode_qa(
    tokenizer: Any,
    question: str,
    answer: str,
    *,
    max_length: int,
    chat_template: bool = False,
) -> Encoding:
    """Encode one QA pair as ``prompt + answer + EOS`` with answer-only loss.

    Returns an :class:`Encoding` with ``input_ids``, ``attention_mask`` (all ones) and
    ``labels`` (``-100`` on the prompt, the token id on the answer and EOS). When the whole
    sequence exceeds ``max_length`` the answer is cut (EOS dropped) and
    ``Encoding.truncated`` is set. Raises ValueError when the prompt alone leaves no room for
    an answer token, TypeError for a non-string question or answer.
    """
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a str, got {type(answer).__name__}")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    prompt_ids = encode_prompt(tokenizer, question, chat_template=chat_template)
    answer_text = answer if chat_template else " " + answer
    answer_ids = _ids(tokenizer, answer_text, False) + [_eos_id(tokenizer)]
    room = max_length - len(prompt_ids)
    if room < 1:
        raise ValueError(
            f"prompt of {len(prompt_ids)} tokens leaves no room for the answer within "
            f"max_length={max_length} (question: {question[:60]!r})"
        )
    truncated = len(answer_ids) > room
    answer_ids = answer_ids[:room]
    input_ids = prompt_ids + answer_ids
    return Encoding(
        {
            "input_ids": input_ids,
            "attention_mask": [1] * len(input_ids),
            "labels": [IGNORE_INDEX] * len(prompt_ids) + answer_ids,
        },
        truncated=truncated,
    )


def encode_text(tokenizer: Any, text: str, *, max_length: int) -> Encoding:
    """Encode raw text (special tokens + text + EOS); every token carries loss.

    Text longer than ``max_length`` is cut at the end (``Encoding.truncated`` set).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    ids = _ids(tokenizer, text, True) + [_eos_id(tokenizer)]
    truncated = len(ids) > max_length
    ids = ids[:max_length]
    return Encoding(
        {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)},
        truncated=truncated,
    )


def _require_str(row: Mapping[str, Any], key: str, index: int) -> str:
    """``row[key]`` as a string, or a KeyError/TypeError naming the row and field."""
    if key not in row:
        raise KeyError(f"row {index} has no field {key!r} (fields: {sorted(row)})")
    value = row[key]
    if not isinstance(value, str):
        raise TypeError(f"row {index} field {key!r} must be a str, got {type(value).__name__}")
    return value


def _warn_truncated(n_truncated: int, total: int, what: str, max_length: int) -> None:
    """One warning with the number of truncated examples (nothing when none were)."""
    if n_truncated:
        warnings.warn(
            f"{n_truncated} of {total} {what} exceeded max_length={max_length} and were truncated",
            stacklevel=3,
        )


class QADataset(Dataset):  # type: ignore[type-arg]
    """QA rows encoded with :func:`encode_qa` (eagerly, at construction).

    ``n_truncated`` counts the examples whose answer was cut; one warning reports the count.
    Raises ValueError on an empty row list, KeyError/TypeError on a missing or non-string
    question/answer field.
    """

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        tokenizer: Any,
        max_length: int,
        *,
        chat_template: bool = False,
        question_key: str = "question",
        answer_key: str = "answer",
    ) -> None:
        if len(rows) == 0:
            raise ValueError("QADataset got no rows")
        self.encodings: list[Encoding] = [
            encode_qa(
                tokenizer,
                _require_str(row, question_key, i),
                _require_str(row, answer_key, i),
                max_length=max_length,
                chat_template=chat_template,
            )
            for i, row in enumerate(rows)
        ]
        self.n_truncated: int = sum(e.truncated for e in self.encodings)
        _warn_truncated(self.n_truncated, len(rows), "QA examples", max_length)

    def __len__(self) -> int:
        """Number of examples."""
        return len(self.encodings)

    def __getitem__(self, index: int) -> Encoding:
        """The encoded example at ``index``."""
        return self.encodings[index]


class TextDataset(Dataset):  # type: ignore[type-arg]
    """Raw-text rows encoded with :func:`encode_text` (eagerly, at construction).

    ``n_truncated`` counts the texts that were cut; one warning reports the count.
    """

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        tokenizer: Any,
        max_length: int,
        *,
        text_key: str = "text",
    ) -> None:
        if len(rows) == 0:
            raise ValueError("TextDataset got no rows")
        self.encodings: list[Encoding] = [
            encode_text(tokenizer, _require_str(row, text_key, i), max_length=max_length)
            for i, row in enumerate(rows)
        ]
        self.n_truncated: int = sum(e.truncated for e in self.encodings)
        _warn_truncated(self.n_truncated, len(rows), "texts", max_length)

    def __len__(self) -> int:
        """Number of examples."""
        return len(self.encodings)

    def __getitem__(self, index: int) -> Encoding:
        """The encoded example at ``index``."""
        return self.encodings[index]


def rows_dataset(
    rows: Sequence[Mapping[str, Any]], tokenizer: Any, max_length: int,
) -> Dataset:  # type: ignore[type-arg]
    """Raw-text rows (``text``, encoded by :class:`TextDataset`) and QA rows (``question``/
    ``answer``, :class:`QADataset`) as one dataset, example ``i`` being row ``i``.

    Each run of consecutive rows of one kind is one dataset; several runs are joined with
    :class:`torch.utils.data.ConcatDataset`. A row is QA when it has a ``question`` field.
    Raises ValueError on an empty row list.
    """
    if len(rows) == 0:
        raise ValueError("rows_dataset got no rows")
    parts: list[Dataset] = []  # type: ignore[type-arg]
    for is_qa, run in itertools.groupby(rows, key=lambda row: "question" in row):
        group = list(run)
        kind = QADataset if is_qa else TextDataset
        parts.append(kind(group, tokenizer, max_length))
    return parts[0] if len(parts) == 1 else ConcatDataset(parts)


def collate_right_pad(
    batch: Sequence[Mapping[str, list[int]]], pad_token_id: int
) -> dict[str, Tensor]:
    """Stack encoded examples into right-padded LongTensors ``[B, T]``.

    ``input_ids`` are padded with ``pad_token_id``, ``attention_mask`` with 0 and ``labels``
    with ``-100`` (padding never carries loss). Only keys present in the examples are
    returned.
    """
    if len(batch) == 0:
        raise ValueError("collate_right_pad got an empty batch")
    width = max(len(example["input_ids"]) for example in batch)
    fill = {"input_ids": pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
    out: dict[str, Tensor] = {}
    for key, value in fill.items():
        if key not in batch[0]:
            continue
        rows = []
        for i, example in enumerate(batch):
            if key not in example:
                raise KeyError(f"example {i} of the batch has no {key!r}")
            seq = list(example[key])
            rows.append(seq + [value] * (width - len(seq)))
        out[key] = torch.tensor(rows, dtype=torch.long)
    return out


def left_pad_ids(sequences: Sequence[Sequence[int]], pad_token_id: int) -> dict[str, Tensor]:
    """Left pad token id sequences into ``input_ids`` and ``attention_mask`` ``[B, T]``."""
    if len(sequences) == 0:
        raise ValueError("left_pad_ids got no sequences")
    width = max(len(seq) for seq in sequences)
    if width == 0:
        raise ValueError("left_pad_ids got only empty sequences")
    ids = [[pad_token_id] * (width - len(seq)) + list(seq) for seq in sequences]
    mask = [[0] * (width - len(seq)) + [1] * len(seq) for seq in sequences]
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "attention_mask": torch.tensor(mask, dtype=torch.long),
    }


def left_pad_prompts(
    tokenizer: Any,
    prompts: Sequence[str],
    max_length: int | None = None,
    *,
    add_special_tokens: bool = True,
) -> dict[str, Tensor]:
    """Tokenize generation prompts and left pad them (``input_ids``, ``attention_mask``).

    ``prompts`` are already formatted (:func:`format_prompt`, or :func:`format_chat_prompt`
    with ``add_special_tokens=False``). Prompts longer than ``max_length`` keep their last
    ``max_length`` tokens (the end of a prompt is what generation continues), with one
    warning giving the count. Padding uses the pad token, else EOS.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a sequence of str, not a single str")
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    sequences: list[list[int]] = []
    n_truncated = 0
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise TypeError(f"prompt {i} must be a str, got {type(prompt).__name__}")
        ids = _ids(tokenizer, prompt, add_special_tokens)
        if max_length is not None and len(ids) > max_length:
            ids = ids[-max_length:]
            n_truncated += 1
        sequences.append(ids)
    if max_length is not None:
        _warn_truncated(n_truncated, len(sequences), "prompts", max_length)
    return left_pad_ids(sequences, _pad_id(tokenizer))

"""Tests of QA/text tokenization, loss masking and padding."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from fastngd.data.tokenize import (
    IGNORE_INDEX,
    QADataset,
    TextDataset,
    collate_right_pad,
    encode_prompt,
    encode_qa,
    encode_text,
    format_chat_prompt,
    format_prompt,
    left_pad_ids,
    left_pad_prompts,
    rows_dataset,
)

CHAT_TEMPLATE = (
    "{% for m in messages %}Question : {{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %} Answer :{% endif %}"
)


def _tok_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_format_prompt_is_fixed() -> None:
    assert (
        format_prompt("Where was Ada Lune born?") == "Question: Where was Ada Lune born?\nAnswer:"
    )
    with pytest.raises(TypeError, match="question"):
        format_prompt(3)  # type: ignore[arg-type]


def test_encode_qa_masks_prompt_and_keeps_eos(tokenizer) -> None:
    enc = encode_qa(
        tokenizer, "Where was Ada Lune born?", "Ada Lune was born in Lisbon.", max_length=64
    )
    prompt = _tok_ids(tokenizer, "Question: Where was Ada Lune born?\nAnswer:")
    answer = _tok_ids(tokenizer, "Ada Lune was born in Lisbon.")
    eos = tokenizer.eos_token_id
    assert enc["input_ids"] == prompt + answer + [eos]
    assert enc["labels"] == [IGNORE_INDEX] * len(prompt) + answer + [eos]
    assert enc["attention_mask"] == [1] * len(enc["input_ids"])
    assert not enc.truncated
    assert tokenizer.unk_token_id not in enc["input_ids"]
    assert encode_prompt(tokenizer, "Where was Ada Lune born?") == prompt


def test_encode_qa_truncates_answer_and_flags_it(tokenizer) -> None:
    prompt_len = len(encode_prompt(tokenizer, "Where was Ada Lune born?"))
    enc = encode_qa(
        tokenizer,
        "Where was Ada Lune born?",
        "Ada Lune was born in Lisbon.",
        max_length=prompt_len + 3,
    )
    assert enc.truncated
    assert len(enc["input_ids"]) == prompt_len + 3
    assert enc["labels"][-3:] == _tok_ids(tokenizer, "Ada Lune was")
    assert tokenizer.eos_token_id not in enc["input_ids"]
    # exactly fitting (answer + EOS) is not a truncation
    n_answer = len(_tok_ids(tokenizer, "Ada Lune was born in Lisbon.")) + 1
    fit = encode_qa(
        tokenizer,
        "Where was Ada Lune born?",
        "Ada Lune was born in Lisbon.",
        max_length=prompt_len + n_answer,
    )
    assert not fit.truncated and fit["input_ids"][-1] == tokenizer.eos_token_id


def test_encode_qa_errors(tokenizer) -> None:
    with pytest.raises(ValueError, match="no room"):
        encode_qa(tokenizer, "Where was Ada Lune born?", "Lisbon", max_length=4)
    with pytest.raises(TypeError, match="answer"):
        encode_qa(tokenizer, "Where?", 1987, max_length=32)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="question"):
        encode_qa(tokenizer, None, "x", max_length=32)  # type: ignore[arg-type]
    no_eos = copy.deepcopy(tokenizer)
    no_eos.eos_token = None
    with pytest.raises(ValueError, match="eos"):
        encode_qa(no_eos, "Where?", "Lisbon", max_length=32)


def test_chat_template_path(tokenizer) -> None:
    with pytest.raises(ValueError, match="chat template"):
        format_chat_prompt(tokenizer, "Where was Ada Lune born?")
    chat = copy.deepcopy(tokenizer)
    chat.chat_template = CHAT_TEMPLATE
    prompt = format_chat_prompt(chat, "Where was Ada Lune born?")
    assert prompt == "Question : Where was Ada Lune born? Answer :"
    enc = encode_qa(chat, "Where was Ada Lune born?", "Lisbon", max_length=32, chat_template=True)
    n_prompt = len(_tok_ids(chat, prompt))
    assert enc["input_ids"][:n_prompt] == _tok_ids(chat, prompt)
    assert enc["labels"] == [IGNORE_INDEX] * n_prompt + _tok_ids(chat, "Lisbon") + [
        chat.eos_token_id
    ]


def test_encode_text_all_tokens_carry_loss(tokenizer) -> None:
    enc = encode_text(tokenizer, "the capital of Veltoria is Marn", max_length=64)
    assert enc["labels"] == enc["input_ids"]
    assert enc["input_ids"][-1] == tokenizer.eos_token_id
    assert not enc.truncated
    cut = encode_text(tokenizer, "the capital of Veltoria is Marn", max_length=3)
    assert cut.truncated and cut["input_ids"] == _tok_ids(tokenizer, "the capital of")
    with pytest.raises(TypeError, match="text"):
        encode_text(tokenizer, ["a"], max_length=8)  # type: ignore[arg-type]


ROWS = [
    {"question": "Where was Ada Lune born?", "answer": "Lisbon"},
    {
        "question": "Where was Ada Lune born?",
        "answer": "a long answer with many words that goes on and on",
    },
    {"question": "the capital of Veltoria ?", "answer": "the capital of Veltoria is Marn"},
]


def test_qa_dataset_counts_truncation_with_one_warning(tokenizer) -> None:
    with pytest.warns(UserWarning, match=r"2 of 3 QA examples exceeded max_length=14") as record:
        ds = QADataset(ROWS, tokenizer, max_length=14)
    assert len(record) == 1
    assert ds.n_truncated == 2 and len(ds) == 3
    assert [len(ds[i]["input_ids"]) <= 14 for i in range(3)] == [True] * 3


def test_qa_dataset_no_warning_when_everything_fits(tokenizer) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = QADataset(ROWS, tokenizer, max_length=64)
    assert ds.n_truncated == 0


def test_qa_dataset_bad_rows(tokenizer) -> None:
    with pytest.raises(ValueError, match="no rows"):
        QADataset([], tokenizer, max_length=16)
    with pytest.raises(KeyError, match="'answer'"):
        QADataset([{"question": "q"}], tokenizer, max_length=16)
    with pytest.raises(TypeError, match="row 1 field 'answer'"):
        QADataset([ROWS[0], {"question": "q", "answer": ["x"]}], tokenizer, max_length=16)
    ds = QADataset(
        [{"q": "Where?", "a": "Lisbon"}], tokenizer, max_length=16, question_key="q", answer_key="a"
    )
    assert len(ds) == 1


def test_text_dataset(tokenizer) -> None:
    rows = [{"text": "the capital of Veltoria is Marn"}, {"text": "Lisbon"}]
    with pytest.warns(UserWarning, match="1 of 2 texts"):
        ds = TextDataset(rows, tokenizer, max_length=4)
    assert ds.n_truncated == 1 and len(ds) == 2
    with pytest.raises(KeyError, match="'text'"):
        TextDataset([{"body": "x"}], tokenizer, max_length=4)
    with pytest.raises(ValueError, match="no rows"):
        TextDataset([], tokenizer, max_length=4)


def test_rows_dataset_keeps_row_order_and_encodes_each_kind(tokenizer) -> None:
    """Example i is row i, encoded as QA (prompt masked) or as text (every token scored)."""
    texts = [{"text": "the capital of Veltoria is Marn"}, {"text": "Lisbon is a city"}]
    qa = [{"question": "What is the capital of Veltoria?", "answer": "Marn"}]
    rows = [texts[0], qa[0], texts[1]]
    ds = rows_dataset(rows, tokenizer, max_length=64)
    assert len(ds) == 3
    want = [TextDataset(texts[:1], tokenizer, 64)[0], QADataset(qa, tokenizer, 64)[0],
            TextDataset(texts[1:], tokenizer, 64)[0]]
    for got, expected in zip((ds[i] for i in range(3)), want):
        assert dict(got) == dict(expected)
    assert ds[1]["labels"][0] == IGNORE_INDEX and ds[0]["labels"] == ds[0]["input_ids"]
    assert isinstance(rows_dataset(texts, tokenizer, max_length=64), TextDataset)
    with pytest.raises(ValueError, match="no rows"):
        rows_dataset([], tokenizer, max_length=64)


def test_collate_right_pad(tokenizer) -> None:
    ds = QADataset(ROWS, tokenizer, max_length=64)
    batch = collate_right_pad([ds[0], ds[1]], pad_token_id=tokenizer.pad_token_id)
    n0, n1 = len(ds[0]["input_ids"]), len(ds[1]["input_ids"])
    width = max(n0, n1)
    assert batch["input_ids"].shape == (2, width) and batch["input_ids"].dtype == torch.long
    assert batch["input_ids"][0, :n0].tolist() == ds[0]["input_ids"]
    assert batch["input_ids"][0, n0:].eq(tokenizer.pad_token_id).all()
    assert batch["attention_mask"][0].tolist() == [1] * n0 + [0] * (width - n0)
    assert batch["labels"][0, n0:].eq(IGNORE_INDEX).all()
    assert batch["labels"][1].tolist() == ds[1]["labels"]
    with pytest.raises(ValueError, match="empty"):
        collate_right_pad([], pad_token_id=0)


def test_left_pad_prompts_matches_training_prompt(tokenizer) -> None:
    questions = ["Where was Ada Lune born?", "the capital of Veltoria ?"]
    prompts = [format_prompt(q) for q in questions]
    out = left_pad_prompts(tokenizer, prompts)
    ids, mask = out["input_ids"], out["attention_mask"]
    for row, q in enumerate(questions):
        expected = encode_prompt(tokenizer, q)
        n = len(expected)
        assert ids[row, -n:].tolist() == expected
        assert mask[row].tolist() == [0] * (ids.shape[1] - n) + [1] * n
        assert ids[row, : ids.shape[1] - n].eq(tokenizer.pad_token_id).all()


def test_left_pad_prompts_truncates_from_the_left_with_warning(tokenizer) -> None:
    with pytest.warns(UserWarning, match="1 of 2 prompts"):
        out = left_pad_prompts(tokenizer, ["a long answer with many words", "Lisbon"], max_length=3)
    assert out["input_ids"][0].tolist() == _tok_ids(tokenizer, "with many words")
    assert out["attention_mask"][1].tolist() == [0, 0, 1]
    with pytest.raises(TypeError, match="single str"):
        left_pad_prompts(tokenizer, "Lisbon")  # type: ignore[arg-type]


def test_left_pad_falls_back_to_eos_without_pad_token(tokenizer_factory) -> None:
    tok = tokenizer_factory(pad=False)
    assert tok.pad_token_id is None
    out = left_pad_prompts(tok, ["Lisbon Oslo", "Lisbon"])
    assert out["input_ids"][1, 0].item() == tok.eos_token_id
    assert out["attention_mask"][1].tolist() == [0, 1]


def test_left_pad_ids_errors() -> None:
    with pytest.raises(ValueError):
        left_pad_ids([], pad_token_id=0)
    with pytest.raises(ValueError):
        left_pad_ids([[], []], pad_token_id=0)


def test_labels_give_answer_only_loss_in_a_causal_lm(tokenizer) -> None:
    """A real forward pass: the loss from the labels equals the answer-only NLL."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config).eval()
    ds = QADataset(ROWS[:2], tokenizer, max_length=64)
    batch = collate_right_pad([ds[0], ds[1]], pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        out = model(**batch)
        logp = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits.log_softmax(-1)
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    nll = -logp[:, :-1].gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    expected = nll[keep].mean()
    n_answer_tokens = sum(1 for i in range(2) for t in ds[i]["labels"] if t != IGNORE_INDEX)
    assert keep.sum().item() == n_answer_tokens
    assert torch.allclose(out.loss, expected, atol=1e-5)

"""Likelihood-based scores: answer NLL and probability, per-token log-probabilities of text.

Thin views of :mod:`fastngd.eval.token_scores` (one forward pass per batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fastngd.eval.token_scores import qa_token_scores, text_token_scores

__all__ = ["answer_logprob", "answer_nll", "answer_probability", "token_logprobs"]


def answer_logprob(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 256,
    chat_template: bool = False,
) -> list[float]:
    """Per-example mean answer-token log-probability ``(1/|A|) Σ_{t∈A} log p(x_t | x_<t)``.

    A is the answer tokens and EOS of :func:`fastngd.data.tokenize.encode_qa` (see
    :func:`fastngd.eval.qa_token_scores`, same arguments and errors). This is the log of the
    length-normalised probability, finite even when that probability underflows to 0.
    """
    scores = qa_token_scores(
        model,
        tokenizer,
        questions,
        answers,
        batch_size=batch_size,
        max_length=max_length,
        chat_template=chat_template,
    )
    return [s.mean_logprob() for s in scores]


def answer_nll(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 256,
    chat_template: bool = False,
) -> list[float]:
    """Per-example mean answer-token negative log-likelihood (nats): ``-answer_logprob``.

    Each pair is encoded by :func:`fastngd.data.tokenize.encode_qa` (prompt labels -100,
    answer tokens + EOS carry the loss); the value is
    ``-(1/|A|) * sum_{t in A} log p(x_t | x_<t)`` over the answer positions A. Answers cut
    by ``max_length`` are scored on the kept tokens, with one warning giving the count.
    Raises ``ValueError`` on empty or unequal-length inputs, a model/tokenizer vocabulary
    mismatch, or an example whose answer has no token left after truncation.
    """
    return [
        -v
        for v in answer_logprob(
            model,
            tokenizer,
            questions,
            answers,
            batch_size=batch_size,
            max_length=max_length,
            chat_template=chat_template,
        )
    ]


def answer_probability(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 256,
    chat_template: bool = False,
) -> list[float]:
    """Per-example length-normalised answer probability ``exp(-mean answer-token NLL)``.

    The NLL is :func:`answer_nll` (same arguments, same errors); the value lies in [0, 1]
    (0.0 only when it underflows: use :func:`answer_logprob` for the exact log value).
    """
    return [
        math.exp(v)
        for v in answer_logprob(
            model,
            tokenizer,
            questions,
            answers,
            batch_size=batch_size,
            max_length=max_length,
            chat_template=chat_template,
        )
    ]


def token_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 256,
) -> list[list[float]]:
    """Per-text list of ``log p(x_t | x_<t)`` for t = 2..n of the tokenised text.

    Texts are tokenised by the tokenizer's default call (its own special tokens) and cut
    to their first ``max_length`` tokens; the first token has no prediction and is not
    scored. Raises ``ValueError`` on no texts, a text with fewer than two tokens, or a
    model/tokenizer vocabulary mismatch; ``TypeError`` on a non-string text.
    """
    scores = text_token_scores(
        model, tokenizer, texts, batch_size=batch_size, max_length=max_length
    )
    return [list(s.logprobs) for s in scores]

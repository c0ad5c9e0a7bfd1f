"""Per-token scores of scored sequences: log-probabilities, greedy agreement, entropy moments.

One forward pass per batch gives everything the likelihood-based metrics need: the answer
probability and truth ratio (mean log-probability), exact memorization and extraction
strength (whether the greedy token equals the true one), and the membership-inference
scores (loss, zlib, Min-K%, Min-K%++: the last needs the mean and variance of ``log p`` under
the model's next-token distribution). Log-probabilities are kept as log-probabilities: a
probability that underflows to 0 in floating point still has a finite log.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fastngd.eval._checks import check_nonempty, check_same_length, check_strings
from fastngd.models.loading import check_compatible

__all__ = [
    "MIN_LOGPROB",
    "TokenScores",
    "continuation_token_scores",
    "qa_token_scores",
    "text_token_scores",
]

MIN_LOGPROB = -1.0e4
"""Floor of a token log-probability. A token the model gives probability exactly 0 (a
``-inf`` logit) scores ``MIN_LOGPROB`` instead of ``-inf``, so every NLL, truth ratio and
membership score stays finite; finite logits never reach it in practice."""


@dataclass(frozen=True)
class TokenScores:
    """Scores of the scored tokens x_1..x_n of one sequence, in order.

    ``logprobs[t] = log p(x_t | x_<t)`` (floored at :data:`MIN_LOGPROB`); ``correct[t]``:
    the model's greedy token at that position is x_t; ``mean[t] = Σ_v p(v) log p(v)`` and
    ``var[t] = Σ_v p(v) (log p(v))² − mean[t]²`` over the next-token distribution (empty
    unless requested); ``ends_with_eos``: x_n is the EOS appended to an answer.
    """

    logprobs: tuple[float, ...]
    correct: tuple[bool, ...]
    mean: tuple[float, ...] = ()
    var: tuple[float, ...] = ()
    ends_with_eos: bool = False

    def mean_logprob(self) -> float:
        """``(1/n) Σ_t logprobs[t]``: minus the mean NLL (the log of the length-normalised
        probability ``exp(-NLL)``)."""
        return sum(self.logprobs) / len(self.logprobs)

    def content(self) -> TokenScores:
        """The scores without the appended EOS position (the tokens of the text itself), as
        the token-level metrics use them; unchanged when there is no EOS or nothing else."""
        if not self.ends_with_eos or len(self.logprobs) < 2:
            return self
        cut = len(self.logprobs) - 1
        return TokenScores(
            self.logprobs[:cut], self.correct[:cut], self.mean[:cut], self.var[:cut], False
        )


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad) if pad is not None else 0


@torch.no_grad()
def _score_batch(
    model: PreTrainedModel,
    rows: Sequence[tuple[list[int], list[int]]],
    pad_id: int,
    distribution: bool,
    first_index: int,
) -> list[tuple[list[float], list[bool], list[float], list[float]]]:
    """Scores of the tokens whose label is not -100, per row (right padding, one forward)."""
    device = next(model.parameters()).device
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for r, (ids, labs) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[r, : len(ids)] = 1
        labels[r, : len(labs)] = torch.tensor(labs, dtype=torch.long)
    logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = labels[:, 1:].to(logp.device)
    out = []
    for r in range(len(rows)):
        mask = target[r] != -100
        lp_all = logp[r][mask]  # [n, V]
        tokens = target[r][mask]
        picked = lp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        if torch.isnan(picked).any() or torch.isnan(lp_all).any():
            raise ValueError(
                f"the model produced NaN log-probabilities for example {first_index + r}; "
                "its weights or inputs are broken (check for non-finite parameters)"
            )
        correct = (lp_all.argmax(dim=-1) == tokens).tolist()
        mean: list[float] = []
        var: list[float] = []
        if distribution:
            p = lp_all.exp()
            finite = torch.isfinite(lp_all)
            plogp = torch.where(finite, p * lp_all, torch.zeros_like(p))
            plogp2 = torch.where(finite, p * lp_all * lp_all, torch.zeros_like(p))
            mu = plogp.sum(-1)
            mean = mu.double().tolist()
            var = (plogp2.sum(-1) - mu * mu).double().tolist()
        values = picked.clamp_min(MIN_LOGPROB).double().tolist()
        out.append((values, correct, mean, var))
    return out


def _score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[tuple[list[int], list[int], bool]],
    *,
    batch_size: int,
    distribution: bool,
) -> list[TokenScores]:
    """Score encoded ``(input_ids, labels, ends_with_eos)`` rows in batches (eval mode)."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    check_compatible(model, tokenizer)
    pad_id = _pad_id(tokenizer)
    was_training = model.training
    model.eval()
    out: list[TokenScores] = []
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            scored = _score_batch(
                model, [(ids, labs) for ids, labs, _ in chunk], pad_id, distribution, start
            )
            for (values, correct, mean, var), (_, _, eos) in zip(scored, chunk):
                out.append(TokenScores(tuple(values), tuple(correct), tuple(mean), tuple(var), eos))
    finally:
        model.train(was_training)
    return out


def _as_list(ids: Any) -> list[int]:
    if isinstance(ids, torch.Tensor):
        return [int(x) for x in ids.reshape(-1).tolist()]
    return [int(x) for x in ids]


def qa_token_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 256,
    chat_template: bool = False,
    distribution: bool = False,
) -> list[TokenScores]:
    """Scores of the answer tokens (and the EOS after them) of each QA pair.

    Pairs are encoded by :func:`fastngd.data.tokenize.encode_qa` (prompt labels -100, the
    answer tokens and EOS scored: the tokens the training loss uses). Answers cut by
    ``max_length`` are scored on their kept tokens (without EOS), with one warning giving
    the count. ``distribution=True`` also fills ``mean``/``var``. Raises ``ValueError`` on
    empty or unequal-length inputs, a model/tokenizer vocabulary mismatch, an answer with no
    token left, or NaN log-probabilities; ``TypeError`` on a non-string item.
    """
    from fastngd.data.tokenize import encode_qa

    check_nonempty("questions", questions)
    check_same_length("questions", questions, "answers", answers)
    check_strings("questions", questions)
    check_strings("answers", answers)
    rows: list[tuple[list[int], list[int], bool]] = []
    n_truncated = 0
    for i, (q, a) in enumerate(zip(questions, answers)):
        enc = encode_qa(tokenizer, q, a, max_length=max_length, chat_template=chat_template)
        n_truncated += int(enc.truncated)
        ids, labs = _as_list(enc["input_ids"]), _as_list(enc["labels"])
        if all(lab == -100 for lab in labs[1:]):
            raise ValueError(
                f"answers[{i}] has no token carrying loss "
                f"(empty, or cut by max_length={max_length})"
            )
        rows.append((ids, labs, not enc.truncated))
    if n_truncated:
        warnings.warn(
            f"{n_truncated} of {len(rows)} answers exceeded max_length={max_length} "
            "and were scored on their first tokens only",
            stacklevel=2,
        )
    return _score(model, tokenizer, rows, batch_size=batch_size, distribution=distribution)


def text_token_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 256,
    distribution: bool = False,
) -> list[TokenScores]:
    """Scores of tokens 2..n of each text (the first token has no prediction).

    Texts are tokenised by the tokenizer's default call (its own special tokens, e.g. BOS,
    as MUSE's ``tokenizer.encode(text)``) and cut to their first ``max_length`` tokens; no
    EOS is added. Raises ``ValueError`` on no texts, a text with fewer than two tokens, a
    model/tokenizer mismatch or NaN log-probabilities; ``TypeError`` on a non-string text.
    """
    check_nonempty("texts", texts)
    check_strings("texts", texts)
    rows: list[tuple[list[int], list[int], bool]] = []
    for i, text in enumerate(texts):
        ids = _as_list(tokenizer(text)["input_ids"])[:max_length]
        if len(ids) < 2:
            raise ValueError(
                f"texts[{i}] has {len(ids)} token(s); at least 2 are needed to score it"
            )
        rows.append((ids, ids, False))
    return _score(model, tokenizer, rows, batch_size=batch_size, distribution=distribution)


def continuation_token_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 2048,
    distribution: bool = False,
) -> list[TokenScores]:
    """Scores of the tokens of each continuation given its prompt (no EOS).

    The sequence is ``tokenizer(prompt)`` (with special tokens) followed by
    ``tokenizer(" " + continuation)`` without special tokens (the continuation begins a new
    word, as open-unlearning's completion data with ``insert_space``), cut to
    ``max_length`` tokens; only continuation tokens are scored. Raises ``ValueError`` on
    empty or unequal inputs or a continuation with no token left within ``max_length``.
    """
    check_nonempty("prompts", prompts)
    check_same_length("prompts", prompts, "continuations", continuations)
    check_strings("prompts", prompts)
    check_strings("continuations", continuations)
    rows: list[tuple[list[int], list[int], bool]] = []
    for i, (prompt, cont) in enumerate(zip(prompts, continuations)):
        head = _as_list(tokenizer(prompt)["input_ids"])
        tail = _as_list(tokenizer(" " + cont, add_special_tokens=False)["input_ids"])
        ids = (head + tail)[:max_length]
        labels = ([-100] * len(head) + tail)[:max_length]
        if not head or all(lab == -100 for lab in labels[1:]):
            raise ValueError(
                f"continuations[{i}] has no token to score (empty, or cut by "
                f"max_length={max_length})"
            )
        rows.append((ids, labels, False))
    return _score(model, tokenizer, rows, batch_size=batch_size, distribution=distribution)

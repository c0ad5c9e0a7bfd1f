"""How a batch is built and scored: the per-example negative log-likelihood of a model.

Every objective of :mod:`fastngd.unlearn.objectives` is a function of two per-example
quantities, computed by a *task*:

* ``nll[i] = −log π(y_i | x_i)``, summed over the example's target tokens;
* ``n[i]``, the number of those tokens (|y_i|; 1 for a classifier).

With ``cap`` = C, each token's loss is taken as ``min(−log π(y_t | ·), C)`` before the sum:
a token whose probability has fallen below ``e^{−C}`` adds a constant and no gradient (the
bounded ascent of :mod:`fastngd.unlearn.forget_target`). :meth:`CausalLMTask.scores` also
returns the loss of the empty continuation (EOS) from the same forward.

:class:`CausalLMTask` scores right-padded token batches (labels ``-100`` carry no loss, the
label of position t is predicted from position t−1, as in Hugging Face causal LMs);
:class:`ClassifierTask` scores ``(x, y)`` pairs with a model returning class logits.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from fastngd.data.tokenize import IGNORE_INDEX, collate_right_pad

__all__ = ["CausalLMTask", "ClassifierTask", "Task", "infer_task", "special_token_ids"]


class Task(Protocol):
    """Builds batches from examples and scores them.

    The ``"refuse"`` forget target (:mod:`fastngd.unlearn.forget_target`) also needs
    ``output_size(model, batch) -> int`` (V of the cap ln V) and, for its
    empty-continuation term, ``scores(model, batch, cap) -> (nll, n, ℓ^∅)``; a task without
    them runs with ``forget_target="ascent"``. The retain check
    (:mod:`fastngd.unlearn.retain_check`) needs ``agreement(model, batch) -> a`` (one value
    per example, on any device: the check gathers them on the device of the model's
    parameters under ``torchrun``); a task without it runs unchecked.
    """

    def collate(self, examples: Sequence[Any]) -> Any:
        """One batch from a list of examples."""
        ...

    def nll(self, model: nn.Module, batch: Any, cap: float | None = None) -> tuple[Tensor, Tensor]:
        """``(nll, n)``: per-example summed negative log-likelihood and target count, ``[B]``;
        with ``cap``, each token's loss is ``min(loss, cap)``."""
        ...

    def target_count(self, batch: Any) -> Tensor:
        """``Σ_i n_i`` of a batch without running the model (a 0-d float64 tensor)."""
        ...


class CausalLMTask:
    """Token sequences ``{"input_ids", "attention_mask", "labels"}`` for a causal LM.

    ``nll[i] = −Σ_t log softmax(logits[i, t−1])[labels[i, t]]`` over the positions whose label
    is not ``-100``; ``n[i]`` counts them. Log-probabilities are computed in float32 at least.
    """

    def __init__(self, pad_token_id: int, eos_token_id: int | None = None) -> None:
        self.pad_token_id = int(pad_token_id)
        self.eos_token_id = None if eos_token_id is None else int(eos_token_id)

    def collate(self, examples: Sequence[Mapping[str, list[int]]]) -> dict[str, Tensor]:
        """Right-pad encoded examples (:func:`fastngd.data.collate_right_pad`)."""
        return collate_right_pad(examples, self.pad_token_id)

    def nll(self, model: nn.Module, batch: Mapping[str, Tensor],
            cap: float | None = None) -> tuple[Tensor, Tensor]:
        """Per-example summed answer NLL (each token's loss capped at ``cap``) and answer-token
        count."""
        nll, n, _ = self.scores(model, batch, cap, empty=False)
        return nll, n

    def scores(self, model: nn.Module, batch: Mapping[str, Tensor],
               cap: float | None = None,
               empty: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(nll, n, ℓ^∅)`` from one forward: :meth:`nll` and, with ``empty`` and a known
        EOS id, each example's *empty-continuation* loss ``ℓ_i^∅ = mean_{t ∈ S_i}
        −log π(EOS | x_i,<t)``. ``S_i`` is the first answer position for an example with a
        prompt (its label at its first attended position is ``-100``: the empty answer to the
        question), and every scored position for raw text (ending the document wherever it
        is cut); NaN for an example with no scored position. ``ℓ^∅`` is None without an EOS
        id or with ``empty=False``.

        With ``ℓ^∅`` and a ``cap``, a position labelled EOS (the end of an answer or text)
        adds the constant ``cap`` to ``nll``, as a token already forgotten (no gradient; ``n``
        still counts it): the refusal term asks for EOS, and pushing EOS down after a forget
        answer would teach the model not to stop after any answer.
        """
        logits, labels, attention = self._shifted(model, batch)
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        target = labels[:, 1:]
        per_token = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="none",
        ).view(target.shape)
        eos = self.eos_token_id if empty else None
        if cap is not None:
            per_token = torch.clamp(per_token, max=cap)
            if eos is not None:  # an EOS label counts as forgotten: the constant cap
                per_token = per_token.masked_fill(target == eos, cap)
        mask = target != IGNORE_INDEX
        nll = (per_token * mask).sum(dim=1)
        n = mask.sum(dim=1).to(nll.dtype)
        if eos is None:
            return nll, n, None
        first = mask & (mask.long().cumsum(dim=1) == 1)
        # an example with a prompt: its label at its first attended position is -100 (left
        # or right padding alike)
        start = attention.long().argmax(dim=1)
        prompted = labels.gather(1, start[:, None])[:, 0] == IGNORE_INDEX
        where = torch.where(prompted[:, None], first, mask)
        # −log π(EOS) only at the chosen positions (one per QA example)
        picked = logits[where]
        stop = torch.logsumexp(picked, dim=-1) - picked[:, eos]
        rows = where.nonzero()[:, 0]
        total = torch.zeros(len(labels), dtype=stop.dtype, device=stop.device)
        total = total.index_add(0, rows, stop)
        counts = where.sum(dim=1).to(stop.dtype)
        per_example = total / counts.clamp(min=1)
        return nll, n, torch.where(counts > 0, per_example,
                                   torch.full_like(per_example, math.nan))

    @staticmethod
    def _shifted(model: nn.Module,
                 batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """``(logits[:, :-1], labels, attention_mask)`` of one forward, on the model's device:
        the logits at position ``t`` predict ``labels[:, t + 1]``."""
        device = next(model.parameters()).device
        attention = batch["attention_mask"].to(device)
        logits = model(input_ids=batch["input_ids"].to(device), attention_mask=attention).logits
        return logits[:, :-1, :], batch["labels"].to(device), attention

    @torch.no_grad()
    def agreement(self, model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
        """``a_i``: the fraction of each example's scored tokens that are the model's greedy
        choice under teacher forcing, ``[B]`` (1: greedy decoding reproduces the example;
        NaN without a scored token)."""
        logits, labels, _ = self._shifted(model, batch)
        target = labels[:, 1:]
        mask = target != IGNORE_INDEX
        hits = ((logits.argmax(dim=-1) == target) & mask).sum(dim=1)
        n = mask.sum(dim=1)
        return torch.where(n > 0, hits.double() / n.clamp(min=1),
                           torch.full(n.shape, math.nan, dtype=torch.float64,
                                      device=hits.device))

    @torch.no_grad()
    def output_size(self, model: nn.Module, batch: Mapping[str, Tensor]) -> int:
        """The vocabulary size V of the model's logits: the output embedding's size when
        the model has one (Hugging Face models, sharded or not), else one forward of
        ``batch`` in eval mode (the model's mode is restored)."""
        head = getattr(model, "get_output_embeddings", None)
        layer = head() if callable(head) else None
        if isinstance(getattr(layer, "out_features", None), int):
            return int(layer.out_features)  # type: ignore[union-attr]
        device = next(model.parameters()).device
        with _eval_mode(model):
            logits = model(input_ids=batch["input_ids"][:1].to(device),
                           attention_mask=batch["attention_mask"][:1].to(device)).logits
        return int(logits.shape[-1])

    def target_count(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Number of scored tokens (labels other than ``-100`` after the shift)."""
        return (batch["labels"][:, 1:] != IGNORE_INDEX).sum().to(torch.float64)


class ClassifierTask:
    """``(x, y)`` examples for a model mapping a batch ``x`` to class logits ``[B, K]``.

    ``nll[i] = −log softmax(model(x)_i)[y_i]`` and ``n[i] = 1``.
    """

    def collate(self, examples: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        """Stack the inputs and the labels."""
        xs, ys = zip(*examples)
        return torch.stack(list(xs)), torch.stack([torch.as_tensor(y) for y in ys]).long()

    def nll(self, model: nn.Module, batch: tuple[Tensor, Tensor],
            cap: float | None = None) -> tuple[Tensor, Tensor]:
        """Per-example cross-entropy (capped at ``cap``) and ones."""
        device = next(model.parameters()).device
        x, y = batch
        logits = model(x.to(device))
        nll = F.cross_entropy(logits.float(), y.to(device), reduction="none")
        if cap is not None:
            nll = torch.clamp(nll, max=cap)
        return nll, torch.ones_like(nll)

    @torch.no_grad()
    def agreement(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        """``a_i``: 1 where the predicted class is the label, else 0, ``[B]``."""
        device = next(model.parameters()).device
        x, y = batch
        return (model(x.to(device)).argmax(dim=-1) == y.to(device)).double()

    @torch.no_grad()
    def output_size(self, model: nn.Module, batch: tuple[Tensor, Tensor]) -> int:
        """The number of classes K (one forward of ``batch`` in eval mode; the model's mode
        is restored)."""
        device = next(model.parameters()).device
        with _eval_mode(model):
            return int(model(batch[0][:1].to(device)).shape[-1])

    def target_count(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """The number of examples."""
        return torch.tensor(float(len(batch[1])), dtype=torch.float64)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside the block (no dropout, no batch-norm statistics
    updated), its mode restored after."""
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def special_token_ids(model: nn.Module, tokenizer: Any = None) -> tuple[int | None, int | None]:
    """``(pad, eos)`` ids for a causal-LM task: pad from the model's config, else the
    tokenizer's; EOS from the tokenizer (the one that ends the encoded answers), else the
    model's config (the first one when the config lists several)."""
    config = getattr(model, "config", None)
    pad = getattr(config, "pad_token_id", None)
    if pad is None and tokenizer is not None:
        pad = getattr(tokenizer, "pad_token_id", None)
    eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    if eos is None:
        eos = getattr(config, "eos_token_id", None)
    if isinstance(eos, (list, tuple)):
        eos = eos[0] if eos else None
    return pad, eos


def infer_task(example: Any, pad_token_id: int | None, eos_token_id: int | None = None) -> Task:
    """The task matching one example: a mapping with ``input_ids`` → :class:`CausalLMTask`,
    a pair ``(x, y)`` → :class:`ClassifierTask`. Raises TypeError otherwise."""
    if isinstance(example, Mapping) and "input_ids" in example and "labels" in example:
        return CausalLMTask(0 if pad_token_id is None else pad_token_id, eos_token_id)
    if isinstance(example, (tuple, list)) and len(example) == 2:
        return ClassifierTask()
    raise TypeError(
        "cannot tell how to score the examples: expected encoded sequences (mappings with "
        "'input_ids' and 'labels', e.g. fastngd.data.QADataset items) or (x, y) pairs; got "
        f"{type(example).__name__}. Pass task=... explicitly."
    )

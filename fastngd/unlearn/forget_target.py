"""The forget target: what the forget closure asks of the forget examples.

``"ascent"`` (the paper's): the forget closure returns the method's forget objective as it
is, e.g. the token-mean cross-entropy ``CE = Σ_i nll_i / Σ_i n_i``, increased without bound.

``"refuse"`` (the default of the cross-entropy methods): with C = ln V (V the size of the
model's output: the vocabulary, or the number of classes),

    F = Σ_i Σ_t min(ℓ_it, C) / Σ_i n_i  −  mean_i ℓ_i^∅

where ``ℓ_it = −log π(y_it | x_i, y_i,<t)``, except that a position labelled EOS (the end of
the answer) counts as the constant C, and ``ℓ_i^∅ = −log π(EOS | x_i)`` is the loss of the
*empty answer* (EOS right after the prompt). Increasing F

* pushes every answer token down until it is less likely than a uniform guess
  (``π < 1/V``), then leaves it alone: the ascent is bounded, so the tokens already forgotten
  stop pulling the model away from the retain set;
* teaches the model to answer a forget question with nothing: without this term, a model
  whose answer tokens were all pushed down still answers, with whatever words remain likely
  (``the the the …``), which share words with the forgotten answers;
* leaves EOS alone after a forget answer: the end of an answer is no fact, and pushing it
  down teaches the model to run on after every answer, retained ones included (MUSE's
  ROUGE-L F1 then counts the extra words against them).

``F ≤ C``; the gap ``C − F = Σ (C − min(ℓ_it, C)) / Σ n_i + mean ℓ^∅ ≥ 0`` is 0 exactly when
every answer token is below 1/V and the empty answer is certain.
:class:`fastngd.unlearn.stopping.ForgetGapStop` stops once the smoothed gap, and each
example's own gap, is at most ln 2: then ``π(EOS | x_i) ≥ ½`` after every forget question and
greedy decoding answers it with nothing.

On raw text (MUSE), where there is no question, ``ℓ_i^∅`` is the mean over every position
of the document of ``−log π(EOS | x_i,<t)``: the model learns to end a forget document
wherever it is cut, instead of continuing it (:meth:`CausalLMTask.scores`; both terms come
from the same forward). For classifiers ``"refuse"`` is the bounded ascent alone. Methods
with their own forget objective (NPO, SimNPO) are unaffected.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from fastngd.errors import UsageError

if TYPE_CHECKING:
    from fastngd.unlearn.config import UnlearnConfig

__all__ = [
    "ASCENT", "FORGET_TARGETS", "ForgetTarget", "check_forget_target", "refuse_forget_loss",
    "resolve_forget_target", "with_empty",
]

FORGET_TARGETS: tuple[str, ...] = ("refuse", "ascent")
"""The forget targets by name (``UnlearnConfig.forget_target``)."""


def check_forget_target(name: Any) -> None:
    """Raise UsageError unless ``name`` is one of :data:`FORGET_TARGETS`."""
    if name not in FORGET_TARGETS:
        raise UsageError(f"forget_target must be one of {', '.join(FORGET_TARGETS)}, "
                         f"got {name!r}")


@dataclass(frozen=True)
class ForgetTarget:
    """The resolved forget target of a run.

    Attributes:
        cap: C, the per-token cap of the cross-entropy, with the empty-continuation term
            ``mean ℓ^∅`` subtracted (QA data: the empty answer; raw text: EOS at every
            position; none for classifiers); None: the objective unchanged (``"ascent"``).
    """

    cap: float | None = None

    def score(self, task: Any, model: nn.Module,
              batch: Any) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(nll, n, empty)`` of a forget batch, from one forward: the per-example summed
        NLL (each token's loss capped at ``cap``) and token counts, and each example's
        empty-continuation loss ``ℓ_i^∅`` (None without a cap, or for a task without an
        end-of-sequence token: classifiers)."""
        if self.cap is None:
            return (*task.nll(model, batch), None)
        if hasattr(task, "scores"):
            return task.scores(model, batch, self.cap)  # type: ignore[no-any-return]
        return (*task.nll(model, batch, self.cap), None)


def with_empty(value: Tensor, empty: Tensor | None) -> Tensor:
    """``value − mean_i ℓ_i^∅`` over the examples that have an empty-answer term (``ℓ^∅``
    not NaN: an example with no scored position has none); ``value`` when none has."""
    if empty is None:
        return value
    valid = ~torch.isnan(empty)
    if not bool(valid.any()):
        return value
    return value - empty[valid].mean()


ASCENT = ForgetTarget()
"""The target of ``"ascent"``: the objective unchanged."""


def resolve_forget_target(config: UnlearnConfig, task: Any, model: nn.Module,
                          batch: Any) -> ForgetTarget:
    """The :class:`ForgetTarget` of ``config``: with its bounded target
    (:attr:`UnlearnConfig.bounded_target`: ``"refuse"`` and a cross-entropy method), C = ln V
    with V from ``task.output_size(model, batch)``; otherwise the objective unchanged. Raises
    UsageError for an unknown target name, or for ``"refuse"`` with a task that has no
    ``output_size`` (a custom task: pass ``"ascent"``)."""
    check_forget_target(config.forget_target)
    if not config.bounded_target:
        return ASCENT
    if not hasattr(task, "output_size"):
        raise UsageError(f"forget_target='refuse' needs a task with output_size() "
                         f"({type(task).__name__} has not): pass forget_target='ascent'")
    size = task.output_size(model, batch)
    if size < 2:
        raise UsageError(f"forget_target='refuse' needs at least 2 outputs, got {size}")
    return ForgetTarget(cap=math.log(size))


def refuse_forget_loss(pad_token_id: int, eos_token_id: int | None) -> Callable[[nn.Module, Any], Tensor]:
    """``loss_fn(model, inputs) -> F``: the ``"refuse"`` forget value of a causal-LM batch
    (``input_ids``, ``attention_mask``, ``labels`` with ``-100`` on the prompt and the
    padding), for loops that take a forget loss function, such as
    :class:`fastngd.integrations.NGDiffTrainer` (its default for the cross-entropy methods
    under ``forget_target="refuse"``). Without an EOS id it is the bounded ascent alone."""
    from fastngd.unlearn.objectives import mean_nll
    from fastngd.unlearn.tasks import CausalLMTask

    task = CausalLMTask(pad_token_id, eos_token_id)
    caps: list[float] = []  # C, found on the first call

    def loss(model: nn.Module, inputs: Any) -> Tensor:
        batch = {key: inputs[key] for key in ("input_ids", "attention_mask", "labels")}
        if not caps:  # the unwrapped model has the output layer (DDP wrappers have not)
            caps.append(math.log(task.output_size(getattr(model, "module", model), batch)))
        target = ForgetTarget(cap=caps[0])
        nll, n, empty = target.score(task, model, batch)
        return with_empty(mean_nll(nll, n), empty)

    return loss

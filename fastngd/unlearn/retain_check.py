"""The retain check of :func:`fastngd.unlearn.unlearn`: before a run stops, make sure it has
not broken retain examples the model reproduced before unlearning, and repair those it has.

An example is *reproduced* when every scored target is the model's greedy choice under
teacher forcing (a task's ``agreement``):

    a_i = (1/n_i)·Σ_t 1[argmax_v π(v | x_i,<t) = y_i,t] = 1

(for a QA pair: greedy decoding gives the answer word for word; for a classifier: the label
is the predicted class). Before the first step the loop scores a seeded sample of at most
``retain_check`` retain examples (all of them when there are fewer) and keeps the set K of
those reproduced. Each time the stopping rule fires, the examples of K with ``a_i < 1`` now
are *broken*; with none the run stops. Otherwise the next ``retain_repair_steps`` steps put
the broken examples first in their retain batches (filled up with the step's own retain
examples to the usual retain batch size), the stopping rule must fire again, and the check
runs again; after ``retain_repair_rounds`` rounds the run stops whatever the check says.
Each round starts from a cleared momentum (:meth:`fastngd.NGDiffOptimizer.reset_momentum`;
nothing to clear with the SGD base): with Adam's β₁ = 0.9 the first moment would otherwise
still carry 0.9⁴ ≈ 66 % of the unlearning steps' direction after a 4-step round.
The forget side is untouched: its batches, its objective and the stopping rule go on as
before. ``max_steps`` pauses a run wherever it is, in a round or not. The epoch limit does
not cut a round: one under way at the limit (or started by the check when the rule fires
at the last step of the limit) runs to its end, the check follows it at once, and past the
limit only repair rounds run (at most ``retain_repair_rounds × retain_repair_steps`` steps
past it); a round that ended before the limit without the rule firing again is checked at
the limit. A run whose rule has not fired by the limit ends there, unchecked.

Why: the retain batches are drawn at random, so an example whose answer a forget step
damaged may not be drawn again before the run stops; a retain loss near zero on the last
batches says nothing about it. The check looks at each of them, and a few steps aimed at
them restore them (NGDiff keeps the forget side from moving back, Lemma 4).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from fastngd import distributed as fdist
from fastngd.distributed import reshard_fsdp

__all__ = ["RetainCheck", "check_sample"]


def check_sample(n_retain: int, size: int, seed: int) -> list[int]:
    """The retain indices the check scores: all ``n_retain`` when ``size ≥ n_retain``, else
    ``size`` of them drawn without replacement from a generator seeded with ``seed``
    (sorted)."""
    if size >= n_retain:
        return list(range(n_retain))
    generator = torch.Generator().manual_seed(int(seed) * 7_919 + 17)
    return sorted(torch.randperm(n_retain, generator=generator)[:size].tolist())


@torch.no_grad()
def agreements(model: nn.Module, task: Any, data: Any, indices: Sequence[int],
               batch_size: int) -> list[float]:
    """``a_i`` of the examples ``indices`` of ``data`` (``task.agreement`` in batches of
    ``batch_size``, in order).

    Under ``torchrun`` the batches are dealt to the ranks in turn (batch b to rank b mod W),
    so each example is scored in the same batch as in one process and the work is shared.
    Every rank runs the same number of forwards (one with no batch left scores a batch
    again and discards it), so that sharded models gather their parameters together; one
    all_reduce of ``len(indices)`` numbers, on the device of the model's parameters (where
    NCCL needs it, whatever device the task's scores come on), gives every rank every
    value."""
    if not indices:
        return []
    world, rank = fdist.world_size(), fdist.rank()
    batches = [list(indices[s:s + batch_size]) for s in range(0, len(indices), batch_size)]
    values = torch.zeros(len(indices), dtype=torch.float32,
                         device=next(model.parameters()).device)
    for turn in range(-(-len(batches) // world)):
        b = turn * world + rank
        own = b < len(batches)
        chunk = batches[b] if own else batches[rank % len(batches)]
        reshard_fsdp(model)
        scores = task.agreement(model, task.collate([data[i] for i in chunk]))
        if own:
            values[b * batch_size:b * batch_size + len(chunk)] = scores.float().to(values.device)
    reshard_fsdp(model)
    return fdist.sum_over_ranks(values).cpu().tolist()  # type: ignore[no-any-return]


@dataclass
class RetainCheck:
    """The state of the retain check of one run (see the module docstring).

    Attributes:
        repair_steps: steps of each repair round (≥ 1).
        rounds: the most repair rounds (≥ 0; 0: check and report, never repair).
        checked: how many retain examples :meth:`start` scored.
        kept: the retain indices reproduced before unlearning (K).
        pending: the broken examples the current round repairs.
        steps_left: repair steps left in the current round.
        rounds_done: repair rounds started.
        log: ``{"step", "broken"}`` of every check (``broken``: how many of K).
    """

    repair_steps: int = 4
    rounds: int = 5
    checked: int = 0
    kept: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    steps_left: int = 0
    rounds_done: int = 0
    log: list[dict[str, int]] = field(default_factory=list)

    def start(self, model: nn.Module, task: Any, data: Any, size: int, seed: int,
              batch_size: int) -> None:
        """Find K: the examples of :func:`check_sample` ``(len(data), size, seed)`` that the
        model reproduces now."""
        indices = check_sample(len(data), size, seed)
        scores = agreements(model, task, data, indices, batch_size)
        self.checked = len(indices)
        self.kept = [i for i, a in zip(indices, scores) if a >= 1.0]

    def broken(self, model: nn.Module, task: Any, data: Any, batch_size: int) -> list[int]:
        """The examples of K the model no longer reproduces."""
        scores = agreements(model, task, data, self.kept, batch_size)
        return [i for i, a in zip(self.kept, scores) if a < 1.0]

    @property
    def repairing(self) -> bool:
        """Whether a repair round has steps left."""
        return self.steps_left > 0

    @property
    def round_over(self) -> bool:
        """Whether a repair round has ended with no check after it: the last check found
        examples broken, so it started that round (with no round left the run would have
        stopped there), and the round has no step left."""
        return not self.repairing and bool(self.log) and self.log[-1]["broken"] > 0

    def on_stop(self, step: int, model: nn.Module, task: Any, data: Any,
                batch_size: int) -> bool:
        """The stopping rule fired at ``step``: True to stop (nothing broken, or no round
        left), False after starting a repair round. Called while a round has steps left it
        lets the round finish (False)."""
        if self.repairing:
            return False
        if not self.kept:
            return True
        broken = self.broken(model, task, data, batch_size)
        self.log.append({"step": int(step), "broken": len(broken)})
        if not broken or self.rounds_done >= self.rounds:
            return True
        self.pending, self.steps_left = broken, self.repair_steps
        self.rounds_done += 1
        return False

    def repair_batch(self, planned: Sequence[int]) -> tuple[list[int], int]:
        """The retain batch of a repair step and how many broken examples lead it: the
        broken examples first (a window of them, moving on each step, when there are more
        than the batch holds), then the step's planned examples not among them,
        ``len(planned)`` in all. Counts one repair step."""
        size = len(planned)
        offset = (self.repair_steps - self.steps_left) * size
        pending = self.pending
        if len(pending) > size:
            start = offset % len(pending)
            pending = (pending[start:] + pending[:start])[:size]
        chosen = set(pending)
        batch = list(pending) + [i for i in planned if i not in chosen]
        self.steps_left -= 1
        return batch[:size], len(pending)

    def summary(self) -> dict[str, Any]:
        """``checked``, ``kept`` (how many), ``rounds`` (started) and ``log``: what
        :class:`fastngd.unlearn.UnlearnResult` reports."""
        return {"checked": self.checked, "kept": len(self.kept), "rounds": self.rounds_done,
                "log": [dict(x) for x in self.log]}

    def state_dict(self) -> dict[str, Any]:
        """The state, for checkpoints (plain lists and ints)."""
        return {"checked": self.checked, "kept": list(self.kept), "pending": list(self.pending),
                "steps_left": self.steps_left, "rounds_done": self.rounds_done,
                "log": [dict(x) for x in self.log]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.checked = int(state["checked"])
        self.kept = [int(i) for i in state["kept"]]
        self.pending = [int(i) for i in state["pending"]]
        self.steps_left = int(state["steps_left"])
        self.rounds_done = int(state["rounds_done"])
        self.log = [{k: int(v) for k, v in x.items()} for x in state["log"]]

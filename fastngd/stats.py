"""What one optimizer step reports, and the skip decision it is made from."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

import torch
from torch import Tensor

__all__ = [
    "GEN_OUTCOMES",
    "SKIP_FORGET_LOSS",
    "SKIP_GRAM",
    "SKIP_LR",
    "SKIP_REASONS",
    "SKIP_RETAIN_LOSS",
    "SKIP_WEIGHTS",
    "StepStats",
    "skip_flags",
]

SKIP_RETAIN_LOSS = 1
SKIP_FORGET_LOSS = 2
SKIP_GRAM = 4
SKIP_WEIGHTS = 8
SKIP_LR = 16

#: Bits of :attr:`StepStats.skip_flags`, and the reason each stands for.
SKIP_REASONS = {
    SKIP_RETAIN_LOSS: "non-finite retain loss",
    SKIP_FORGET_LOSS: "non-finite forget loss",
    SKIP_GRAM: "non-finite gradient norms or dot product",
    SKIP_WEIGHTS: "non-finite combine weights",
    SKIP_LR: "non-finite learning rate",
}

#: Values of :attr:`StepStats.gen_outcome`: what the step size did on this step.
GEN_OUTCOMES = {
    0: "no probe (fixed learning rate this step)",
    1: "GeN fit accepted: learning rate updated",
    2: "GeN fit rejected (G <= 0 or C <= 0): learning rate kept",
    3: "GeN probe loss not finite: step not taken (θ restored), learning-rate scale halved",
    4: "GeN probed a skipped step: nothing changed",
}


def skip_flags(failed: dict[int, Tensor]) -> Tensor:
    """The bit set of :data:`SKIP_REASONS` from ``{bit: failed}`` (0-d boolean tensors on
    one device): bit ``b`` is set where ``failed[b]`` is true. No host sync."""
    if set(failed) - set(SKIP_REASONS):
        raise ValueError(f"unknown skip bits {sorted(set(failed) - set(SKIP_REASONS))}")
    flags = None
    for bit, bad in failed.items():
        term = bad.to(torch.int64) * bit
        flags = term if flags is None else flags | term
    if flags is None:
        raise ValueError("skip_flags needs at least one check")
    return flags


@dataclass
class StepStats:
    """Scalars describing one step. Every field is a 0-d tensor on the parameters' device
    (nothing is copied to the host); :meth:`as_dict`, :attr:`skip_reason` and
    :attr:`gen_report` do that on demand.

    Attributes:
        loss_retain, loss_forget: ``L_R`` and ``L_F`` before the step (detached).
        norm_retain, norm_forget: ``‖g_R‖`` and ``‖g_F‖`` (global over all parameters).
        cosine: ``g_R·g_F/(‖g_R‖‖g_F‖)`` in [−1, 1] (0 where a norm is 0).
        weight_retain, weight_forget: ``w_R`` and ``w_F`` of the direction (for per-tensor
            rules, their mean over the tensors).
        lr: the learning rate applied to the first parameter group (0 when skipped or when
            the step was not taken).
        lr_scale: the GeN multiplier of every group's ``lr`` (1 without autolr).
        lr_updated: GeN probed and accepted a new learning rate this step.
        skipped: the step was skipped (parameters and the base's state untouched).
        skip_flags: bit set of the reasons (see ``SKIP_REASONS``).
        probe_losses: ``[L₊, L₋]`` of the GeN probes, or ``None`` when GeN did not run.
        retain_dot_update, forget_dot_update: ``g_R·u`` and ``g_F·u`` for the base's update
            ``u`` of this step (``θ ← θ − η·u``): ``g_R·u > 0`` means the step descends L_R
            to first order and ``g_F·u < 0`` that it ascends L_F. With ``base="sgd"`` (no
            weight decay) ``u = d`` and the rule's Lemma-4 sides hold for them; a
            preconditioner (Adam) can break them. 0 on skipped steps.
        gen_outcome: what the step size did (see ``GEN_OUTCOMES``).
    """

    loss_retain: Tensor
    loss_forget: Tensor
    norm_retain: Tensor
    norm_forget: Tensor
    cosine: Tensor
    weight_retain: Tensor
    weight_forget: Tensor
    lr: Tensor
    lr_scale: Tensor
    lr_updated: Tensor
    skipped: Tensor
    skip_flags: Tensor
    probe_losses: Optional[Tensor] = None
    retain_dot_update: Optional[Tensor] = None
    forget_dot_update: Optional[Tensor] = None
    gen_outcome: Optional[Tensor] = None

    @property
    def skip_reason(self) -> str:
        """Why the step was skipped (``""`` when it was not). Reads the flags on the host."""
        flags = int(self.skip_flags.item())
        return "; ".join(text for bit, text in SKIP_REASONS.items() if flags & bit)

    @property
    def gen_report(self) -> str:
        """What the step size did, in words (see ``GEN_OUTCOMES``). Reads it on the host."""
        return GEN_OUTCOMES[0 if self.gen_outcome is None else int(self.gen_outcome.item())]

    def as_dict(self) -> dict[str, object]:
        """Plain Python values (one host sync per field)."""
        out: dict[str, object] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None:
                out[f.name] = None
            elif v.numel() == 1:
                out[f.name] = v.item()
            else:
                out[f.name] = v.tolist()
        out["skip_reason"] = self.skip_reason
        out["gen_report"] = self.gen_report
        return out

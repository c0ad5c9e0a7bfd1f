"""What one optimizer step reports."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

from torch import Tensor

__all__ = ["StepStats"]

#: Bits of :attr:`StepStats.skip_flags`, and the reason each stands for.
SKIP_REASONS = {
    1: "non-finite retain loss",
    2: "non-finite forget loss",
    4: "non-finite gradient norms or dot product",
    8: "non-finite combine weights",
}


@dataclass
class StepStats:
    """Scalars describing one step. Every field is a 0-d tensor on the parameters' device
    (nothing is copied to the host); :meth:`as_dict` and :attr:`skip_reason` do that on demand.

    Attributes:
        loss_retain, loss_forget: ``L_R`` and ``L_F`` before the step (detached).
        norm_retain, norm_forget: ``‖g_R‖`` and ``‖g_F‖`` (global over all parameters).
        cosine: ``g_R·g_F/(‖g_R‖‖g_F‖)`` (0 where a norm is 0).
        weight_retain, weight_forget: ``w_R`` and ``w_F`` of ``d = w_R·g_R − w_F·g_F``.
        lr: the learning rate applied to the first parameter group (0 when skipped).
        lr_scale: the GeN multiplier of every group's ``lr`` (1 without autolr).
        lr_updated: GeN probed and accepted a new learning rate this step.
        skipped: the step was skipped (parameters and state untouched).
        skip_flags: bit set of the reasons (see ``SKIP_REASONS``).
        probe_losses: ``[L₊, L₋]`` of the GeN probes, or ``None`` when GeN did not run.
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

    @property
    def skip_reason(self) -> str:
        """Why the step was skipped (``""`` when it was not). Reads the flags on the host."""
        flags = int(self.skip_flags.item())
        return "; ".join(text for bit, text in SKIP_REASONS.items() if flags & bit)

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
        return out

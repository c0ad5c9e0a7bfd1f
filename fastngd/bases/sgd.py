"""Plain SGD under the direction: ``u = d + wd·θ`` (``torch.optim.SGD`` fed ``d``).

No state. With weight decay ``wd`` (L2, default 0) the step is ``θ ← θ − η·(d + wd·θ)``.
This is the package's original update (``base="sgd"``, the default): with ``wd = 0``, ``u = d``
and Lemma 4 holds for the step itself.
"""
from __future__ import annotations

from typing import Any, ClassVar

from ._base import BaseUpdate

__all__ = ["SGD"]


class SGD(BaseUpdate):
    """``u = d + wd·θ``; per-group ``weight_decay`` (default 0)."""

    name: ClassVar[str] = "sgd"
    defaults: ClassVar[dict[str, Any]] = {"weight_decay": 0.0}

"""fastngd: normalized gradient difference (NGDiff) and two-task optimizers for unlearning.

The main entry point is :class:`NGDiffOptimizer`, in three layers: combine rules (the
direction) in :mod:`fastngd.rules`, base updates (SGD, momentum, Adam, AdamW under the
direction) in :mod:`fastngd.bases`, step sizes (fixed, GeN) in :mod:`fastngd.step_sizes`
(the GeN fit itself in :mod:`fastngd.autolr`); backends in :mod:`fastngd.backends`.
"""
from __future__ import annotations

from .autolr import GeNConfig
from .bases import BASES
from .optimizer import NGDiffOptimizer
from .rules import RULES, CombineRule, get_rule
from .stats import StepStats
from .step_sizes import STEP_SIZES

__all__ = ["BASES", "RULES", "STEP_SIZES", "CombineRule", "GeNConfig", "NGDiffOptimizer",
           "StepStats", "get_rule"]
__version__ = "0.1.0"

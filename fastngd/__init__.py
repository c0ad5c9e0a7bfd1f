"""fastngd: normalized gradient difference (NGDiff) and two-task optimizers for unlearning.

The main entry point is :class:`NGDiffOptimizer`; combine rules live in :mod:`fastngd.rules`,
the GeN learning-rate fit in :mod:`fastngd.autolr`, backends in :mod:`fastngd.backends`.
"""
from __future__ import annotations

from .autolr import GeNConfig
from .optimizer import NGDiffOptimizer
from .rules import RULES, CombineRule, get_rule
from .stats import StepStats

__all__ = ["NGDiffOptimizer", "StepStats", "GeNConfig", "RULES", "CombineRule", "get_rule"]
__version__ = "0.1.0"

"""The unlearning loop, the method registry and the forget objectives.

``unlearn(model, forget, retain, method="ngdiff", autolr=True, ...)`` runs any method of
:data:`METHODS` (or ``gdiff-<c>``) through :class:`fastngd.NGDiffOptimizer`, with whole-run
checkpoints that resume bit-identically.
"""
from fastngd.unlearn.batching import data_fingerprint, epoch_plan, steps_per_epoch
from fastngd.unlearn.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from fastngd.unlearn.loop import UnlearnConfig, UnlearningDiverged, UnlearnResult, unlearn
from fastngd.unlearn.methods import METHODS, Method, get_method, method_names
from fastngd.unlearn.objectives import (
    FORGET_OBJECTIVES,
    ForgetObjective,
    get_objective,
    mean_nll,
    npo_loss,
    simnpo_loss,
)
from fastngd.unlearn.tasks import CausalLMTask, ClassifierTask, Task, infer_task

__all__ = [
    "CHECKPOINT_NAME",
    "FORGET_OBJECTIVES",
    "METHODS",
    "CausalLMTask",
    "ClassifierTask",
    "ForgetObjective",
    "Method",
    "Task",
    "UnlearnConfig",
    "UnlearnResult",
    "UnlearningDiverged",
    "data_fingerprint",
    "epoch_plan",
    "get_method",
    "get_objective",
    "infer_task",
    "load_checkpoint",
    "mean_nll",
    "method_names",
    "npo_loss",
    "save_checkpoint",
    "simnpo_loss",
    "steps_per_epoch",
    "unlearn",
]

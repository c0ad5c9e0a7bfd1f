"""The unlearning loop, its configuration, the method registry and the forget objectives.

``unlearn(model, forget, retain, UnlearnConfig(method="ngdiff", ...))`` runs any method of
:data:`METHODS` (or ``gdiff-<c>``) through :class:`fastngd.NGDiffOptimizer`, with whole-run
checkpoints that resume bit-identically and are verified by a SHA-256 manifest.
"""
from fastngd.unlearn.batching import data_fingerprint, epoch_plan, steps_per_epoch
from fastngd.unlearn.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    checkpoint_exists,
    load_checkpoint,
    remove_checkpoint,
    save_checkpoint,
)
from fastngd.unlearn.config import (
    BASE_FLAGS,
    BASE_LR,
    UnlearnConfig,
    base_options,
    check_base_options,
    optimizer_kwargs,
)
from fastngd.unlearn.forget_target import FORGET_TARGETS, ForgetTarget
from fastngd.unlearn.loop import UnlearningDiverged, UnlearnResult, unlearn
from fastngd.unlearn.methods import METHODS, Method, get_method, method_names
from fastngd.unlearn.objectives import (
    FORGET_OBJECTIVES,
    ForgetObjective,
    get_objective,
    mean_nll,
    npo_loss,
    simnpo_loss,
)
from fastngd.unlearn.retain_check import RetainCheck
from fastngd.unlearn.selection import Selection, parse_keep_best
from fastngd.unlearn.stopping import ExampleLossStop, ForgetGapStop, ForgetLossStop, stopping_rule
from fastngd.unlearn.tasks import CausalLMTask, ClassifierTask, Task, infer_task

__all__ = [
    "BASE_FLAGS",
    "BASE_LR",
    "BEST_NAME",
    "CHECKPOINT_NAME",
    "FORGET_OBJECTIVES",
    "FORGET_TARGETS",
    "METHODS",
    "CausalLMTask",
    "ClassifierTask",
    "ExampleLossStop",
    "ForgetGapStop",
    "ForgetLossStop",
    "ForgetObjective",
    "ForgetTarget",
    "Method",
    "RetainCheck",
    "Selection",
    "Task",
    "UnlearnConfig",
    "UnlearnResult",
    "UnlearningDiverged",
    "base_options",
    "check_base_options",
    "checkpoint_exists",
    "data_fingerprint",
    "epoch_plan",
    "get_method",
    "get_objective",
    "infer_task",
    "load_checkpoint",
    "mean_nll",
    "method_names",
    "npo_loss",
    "optimizer_kwargs",
    "parse_keep_best",
    "remove_checkpoint",
    "save_checkpoint",
    "simnpo_loss",
    "steps_per_epoch",
    "stopping_rule",
    "unlearn",
]

"""LoRA adapters (through ``peft``): unlearn with a few trainable weights instead of all.

A LoRA layer replaces ``W x`` by ``W x + (α/r)·B A x`` with ``A ∈ R^{r×in}`` (random init) and
``B ∈ R^{out×r}`` (zeros), so the adapted model starts equal to the original; only ``A`` and
``B`` are trained (and put in the optimizer), ``W`` is frozen. Merging writes
``W ← W + (α/r)·B A`` back and removes the adapters.

The memory an NGDiff step needs beyond the model is two gradient-sized buffers of the
*trainable* weights (``p.grad`` and the stashed retain gradient; 1 + 0.27 with
``retain_storage="int8"``), which is what :func:`trainable_memory` reports.
"""
from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

from fastngd.errors import UsageError

__all__ = ["apply_lora", "is_lora_model", "merge_lora", "trainable_memory"]


def _peft() -> Any:
    try:
        import peft
    except ImportError as exc:  # pragma: no cover - peft is in the experiments extra
        raise UsageError(
            "LoRA needs the 'peft' package: pip install peft (or fastngd[experiments])"
        ) from exc
    return peft


def is_lora_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``peft`` model (adapters already attached). Never imports
    ``peft``: a model can only be one if ``peft`` was imported already."""
    peft = sys.modules.get("peft")
    peft_model = getattr(peft, "PeftModel", None) if peft is not None else None
    return peft_model is not None and isinstance(model, peft_model)


def apply_lora(
    model: nn.Module,
    rank: int,
    *,
    alpha: float | None = None,
    target_modules: str | tuple[str, ...] | list[str] = "all-linear",
    dropout: float = 0.0,
    seed: int = 0,
) -> nn.Module:
    """Attach LoRA adapters of rank ``rank`` to ``model`` (in place: its layers are replaced)
    and return the ``peft`` model wrapping it; only the adapters require gradients.

    ``alpha`` defaults to ``2·rank``; ``target_modules`` is peft's (``"all-linear"``: every
    linear layer except a language model's output head); ``A`` is initialised from
    ``seed`` (inside a forked RNG: the caller's RNG state is untouched). Raises UsageError
    for a non-positive rank or a model with no matching layer.
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise UsageError(f"--lora-rank must be a positive integer, got {rank!r}")
    peft = _peft()
    targets = list(target_modules) if isinstance(target_modules, (tuple, list)) else target_modules
    config = peft.LoraConfig(
        r=rank, lora_alpha=float(alpha if alpha is not None else 2 * rank),
        target_modules=targets, lora_dropout=float(dropout), bias="none",
    )
    devices = [p.device for p in model.parameters()][:1]
    with torch.random.fork_rng(devices=[d for d in devices if d.type == "cuda"]):
        torch.manual_seed(int(seed))
        try:
            wrapped = peft.get_peft_model(model, config)
        except ValueError as exc:
            raise UsageError(f"cannot attach LoRA adapters: {exc}") from exc
    wrapped.eval()
    return wrapped  # type: ignore[no-any-return]


def merge_lora(model: nn.Module) -> nn.Module:
    """Write the adapters into the base weights (``W ← W + (α/r)·B A``) and return the plain
    model without adapters; a model without adapters is returned as it is."""
    if not is_lora_model(model):
        return model
    merged: nn.Module = model.merge_and_unload()  # type: ignore[operator]
    return merged


def trainable_memory(model: nn.Module, retain_storage: str = "exact") -> dict[str, Any]:
    """Parameter counts and the bytes of the optimizer's gradient buffers.

    Returns ``parameters`` (all), ``trainable_parameters``, ``trainable_bytes`` (their
    storage) and ``gradient_buffer_bytes``: the memory of ``p.grad`` plus the stashed retain
    gradient during a step (2 × ``trainable_bytes`` in exact mode; ``int8`` keeps g_R in
    about 0.254 of the float32 bytes).
    """
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    nbytes = sum(p.numel() * p.element_size() for p in trainable)
    if retain_storage == "int8":
        stash = sum(p.numel() for p in trainable) * 1.016  # 1 byte + 4 bytes per 256
    else:
        stash = float(nbytes)
    return {
        "parameters": sum(p.numel() for p in params),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "trainable_bytes": int(nbytes),
        "gradient_buffer_bytes": int(nbytes + stash),
    }

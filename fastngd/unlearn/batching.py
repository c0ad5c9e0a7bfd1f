"""Data order of an unlearning run and a fingerprint of its data.

Protocol: each epoch is one pass over the forget set in a random order, cut into batches of
``batch_size``; each forget batch is paired with ``retain_batch_size`` retain examples drawn
at random without replacement. The order of epoch ``e`` depends only on ``(seed, e)``, so a
run resumed at any step sees exactly the batches the uninterrupted run would have seen.

Data parallel runs (``torchrun``, world size W > 1) use the same plan on every rank; rank r
processes rows ``r::W`` of every forget and retain batch (:func:`rank_share`), so with mean
losses the average over ranks is the full-batch loss. Every batch must then split into W
equal shares (:func:`check_shardable`).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = [
    "EpochPlan", "check_shardable", "data_fingerprint", "epoch_plan", "rank_share",
    "steps_per_epoch",
]

EpochPlan = list[tuple[list[int], list[int]]]
"""``[(forget_indices, retain_indices), ...]``: the batches of one epoch, in order."""

_RETAIN_PERMUTATION_LIMIT = 1 << 16


def steps_per_epoch(n_forget: int, batch_size: int) -> int:
    """``ceil(n_forget / batch_size)``: one step per forget batch (the last may be smaller)."""
    return -(-n_forget // batch_size)


def epoch_plan(
    seed: int, epoch: int, n_forget: int, n_retain: int, batch_size: int, retain_batch_size: int
) -> EpochPlan:
    """The batches of epoch ``epoch``, drawn from a generator seeded with ``(seed, epoch)``.

    Retain batches hold ``min(retain_batch_size, n_retain)`` distinct examples (drawn with a
    full permutation up to 65,536 retain examples, independently with replacement above).
    """
    if n_forget < 1 or n_retain < 1:
        raise ValueError(f"need a non-empty forget and retain set, got {n_forget} and {n_retain}")
    generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (1 << 63))
    order = torch.randperm(n_forget, generator=generator).tolist()
    k = min(retain_batch_size, n_retain)
    plan: EpochPlan = []
    for start in range(0, n_forget, batch_size):
        if n_retain <= _RETAIN_PERMUTATION_LIMIT:
            retain = torch.randperm(n_retain, generator=generator)[:k].tolist()
        else:
            retain = torch.randint(n_retain, (k,), generator=generator).tolist()
        plan.append((order[start : start + batch_size], retain))
    return plan


def check_shardable(
    n_forget: int, n_retain: int, batch_size: int, retain_batch_size: int, world: int
) -> None:
    """Raise ValueError unless every forget and retain batch of the protocol splits into
    ``world`` equal shares (forget batches of ``batch_size`` and a last one of
    ``n_forget mod batch_size``; retain batches of ``min(retain_batch_size, n_retain)``)."""
    if world < 1:
        raise ValueError(f"the world size must be positive, got {world}")
    if world == 1:
        return
    sizes = {"batch_size": batch_size, "retain batch size": min(retain_batch_size, n_retain)}
    last = n_forget % batch_size
    if last:
        sizes["last forget batch (n_forget mod batch_size)"] = last
    bad = [f"{name} = {size}" for name, size in sizes.items() if size % world]
    if bad:
        raise ValueError(
            f"data parallel unlearning on {world} ranks gives every rank an equal share of "
            f"each batch, but {', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not "
            f"divisible by {world}: choose batch sizes (and a forget set size) that are "
            f"multiples of the world size"
        )


def rank_share(indices: Sequence[int], rank: int, world: int) -> list[int]:
    """Rows ``rank::world`` of a batch: the share of ``rank`` among ``world`` ranks."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world} ranks")
    return list(indices[rank::world])


def _example_bytes(example: Any) -> bytes:
    """A canonical byte form of one example (token ids, or tensor contents)."""
    if isinstance(example, Mapping):
        keys = [k for k in ("input_ids", "labels") if k in example]
        return json.dumps({k: list(map(int, example[k])) for k in keys}).encode()
    if isinstance(example, (tuple, list)):
        parts = []
        for item in example:
            t = torch.as_tensor(item).detach().cpu().contiguous()
            parts.append(str(t.dtype).encode() + str(tuple(t.shape)).encode() + t.numpy().tobytes())
        return b"|".join(parts)
    return repr(example).encode()


def data_fingerprint(examples: Sequence[Any]) -> str:
    """First 16 hex digits of the SHA-256 of every example's canonical bytes, in order."""
    digest = hashlib.sha256()
    for i in range(len(examples)):
        digest.update(_example_bytes(examples[i]))
        digest.update(b"\n")
    return digest.hexdigest()[:16]

"""Launches per optimizer step do not depend on the number of tensors."""
from __future__ import annotations

import torch
from fastngd.kernels import launch_count, reset_launch_count

from fastngd.backends.triton import TritonBackend


def _step_launches(n_tensors: int, storage: str) -> int:
    """Launches of one step's backend calls: GeN ops with exact storage, the plain update
    with compact storage (quantize + Gram + update)."""
    be = TritonBackend(chunk_size=256, block_size=256)
    g = torch.Generator().manual_seed(n_tensors)
    sizes = [3 + (i % 5) for i in range(n_tensors)]
    p = [torch.randn(s, generator=g) for s in sizes]
    r = [torch.randn(s, generator=g) for s in sizes]
    f = [torch.randn(s, generator=g) for s in sizes]
    lr = torch.full((n_tensors,), 0.1)
    w = torch.tensor([1.0, 1.0])
    reset_launch_count()
    stored = be.store_retain(r, storage)
    be.gram(stored, f)
    if storage == "exact":
        d, b = be.direction_and_backup(p, stored, f, w, sago=True)
        be.perturb(p, b, d, lr)
    else:
        be.update(p, stored, f, lr, w, sago=True)
    return launch_count()


def test_launch_count_is_independent_of_the_number_of_tensors() -> None:
    for storage, expected in (("exact", 4), ("int8", 4)):
        few, many = _step_launches(3, storage), _step_launches(300, storage)
        assert few == many == expected, (storage, few, many)

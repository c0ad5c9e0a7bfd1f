"""Launches per optimizer step do not depend on the number of tensors, and every tensor of a
bucket goes through the kernels (the grids grow, the launch count does not)."""
from __future__ import annotations

import pytest
import torch
from fastngd.kernels import launch as klaunch
from fastngd.kernels import launch_count, reset_launch_count

from fastngd.backends.triton import TritonBackend

from ._util import hyper_rows, state_for, weight_rows

#: (store_retain + gram + step) and (gram + advance_and_backup + 3 perturbs): 2 + 2 (+ 1) and
#: 2 + 2 + 3 launches.
EXPECTED = {("int8", False): 5, ("exact", False): 4, ("exact", True): 7, ("int8", True): 8}


def _step(n_tensors: int, storage: str, gen: bool) -> int:
    be = TritonBackend(chunk_size=256)
    g = torch.Generator().manual_seed(n_tensors)
    sizes = [3 + (i % 5) for i in range(n_tensors)]
    p, r, f = ([torch.randn(s, generator=g) for s in sizes] for _ in range(3))
    state = state_for("adam", p, 0)
    hyper, w = hyper_rows(n_tensors), weight_rows(n_tensors)
    reset_launch_count()
    stored = be.store_retain(r, storage)
    be.gram(stored, f, per_tensor=True)
    if gen:
        u, b, _ = be.advance_and_backup(p, stored, f, state, hyper, w, "adam", "sago")
        for s in (0.1, -0.1, 0.0):
            be.perturb(p, b, u, torch.full((n_tensors,), s, dtype=torch.float64))
    else:
        be.step(p, stored, f, state, hyper, w, "adam", "sago")
    return launch_count()


@pytest.mark.parametrize("storage,gen", list(EXPECTED))
def test_launch_count_is_independent_of_the_number_of_tensors(
    storage: str, gen: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _step(3, storage, gen)  # executed
    grids: list[tuple[str, int]] = []
    monkeypatch.setattr(klaunch, "_execute",
                        lambda kernel, grid, args, kw: grids.append((kernel.__name__, grid[0])))
    few = _step(3, storage, gen)  # recorded only: 300 tensors are too slow to interpret
    few_grids, grids[:] = list(grids), []
    many = _step(300, storage, gen)
    assert real == few == many == EXPECTED[(storage, gen)]
    assert [k for k, _ in grids] == [k for k, _ in few_grids]
    fused = [rows for name, rows in grids if name == "_fused_kernel"]
    assert fused == [300]  # one program per tensor: no tensor left to the fallback

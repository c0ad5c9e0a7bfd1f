"""The worker threads of the torch backend: results do not depend on which thread ran what."""
from __future__ import annotations

import pytest
import torch

from fastngd.backends import TorchBackend, _workers


def test_worker_threads_give_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bucket large enough for the worker threads: the same bits as on the calling thread."""
    g = torch.Generator().manual_seed(0)
    shapes = [(1 << 20,), (3000,), (5,)]
    p, r, f = ([torch.randn(s, generator=g) for s in shapes] for _ in range(3))
    st = [[torch.rand(s, generator=g) for s in shapes] for _ in range(2)]
    hyper = torch.tensor([[0.1, 0.01, 0.9, 0.99, 1e-8, 0.5, 0.3]] * 3, dtype=torch.float64)
    w = torch.tensor([[0.7, 0.3]] * 3, dtype=torch.float64)
    copies = [[t.clone() for t in x] for x in (p, *st)]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threaded = TorchBackend().step(p, r, f, st, hyper, w, "adamw")
        gram_threaded = TorchBackend().gram(r, f)
        monkeypatch.setattr(_workers, "PARALLEL_MIN", 1 << 40)
        alone = TorchBackend().step(copies[0], r, f, copies[1:], hyper, w, "adamw")
        gram_alone = TorchBackend().gram(r, f)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(threaded, alone) and torch.equal(gram_threaded, gram_alone)
    for a, b in zip([p, *st], copies):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_errors_in_a_worker_reach_the_caller() -> None:
    items = list(range(8))

    def fn(j: int, it: int) -> None:
        if it == 5:
            raise RuntimeError("item 5")

    with pytest.raises(RuntimeError, match="item 5"):
        _workers.run_items(items, [1 << 20] * 8, torch.device("cpu"), fn)

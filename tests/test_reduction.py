"""The Gram reduction over buckets (one process: no collective)."""
from __future__ import annotations

import torch

from fastngd.backends import TorchBackend
from fastngd.reduction import reduce_gram
from fastngd.update import Bucket


def _bucket(dtype, values_r, values_f):
    b = Bucket(torch.device("cpu"), dtype, False, 0)
    for r, f in zip(values_r, values_f):
        b.params.append(torch.zeros(len(r), dtype=dtype))
        b.retain.append(torch.tensor(r, dtype=dtype))
        b.forget.append(torch.tensor(f, dtype=dtype))
    return b


def test_rows_in_bucket_order_and_their_sum() -> None:
    a = _bucket(torch.float32, [[1.0, 2.0], [3.0]], [[0.5, 0.0], [-1.0]])
    b = _bucket(torch.bfloat16, [[2.0]], [[4.0]])
    losses = torch.tensor([1.0, 2.0], dtype=torch.float64)
    red = reduce_gram([a, b], lambda d: TorchBackend(), True, losses, torch.device("cpu"))
    assert red.rows.tolist() == [[5.0, 0.25, 0.5], [9.0, 1.0, -3.0], [4.0, 16.0, 8.0]]
    assert red.gram.tolist() == [18.0, 17.25, 5.5] and red.gram.dtype == torch.float64
    assert red.sharded.tolist() == [0.0, 0.0, 0.0] and red.losses.tolist() == [1.0, 2.0]
    glob = reduce_gram([a, b], lambda d: TorchBackend(), False, losses, torch.device("cpu"))
    assert glob.rows is None and torch.equal(glob.gram, red.gram)

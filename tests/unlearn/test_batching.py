"""Data-parallel shares of the unlearning batches."""
from __future__ import annotations

import pytest

from fastngd.unlearn.batching import check_shardable, epoch_plan, rank_share


def test_rank_shares_partition_every_batch() -> None:
    plan = epoch_plan(3, 0, n_forget=12, n_retain=30, batch_size=6, retain_batch_size=4)
    for world in (1, 2, 3):
        for f_idx, r_idx in plan:
            for batch in (f_idx, r_idx):
                shares = [rank_share(batch, r, world) for r in range(world)]
                assert sorted(i for share in shares for i in share) == sorted(batch)
                if len(batch) % world == 0:
                    assert {len(share) for share in shares} == {len(batch) // world}


def test_rank_share_rows() -> None:
    assert rank_share([10, 11, 12, 13], 0, 2) == [10, 12]
    assert rank_share([10, 11, 12, 13], 1, 2) == [11, 13]
    with pytest.raises(ValueError, match="outside"):
        rank_share([1, 2], 2, 2)


def test_check_shardable_accepts_equal_shares() -> None:
    check_shardable(8, 16, 4, 4, 2)
    check_shardable(7, 5, 3, 8, 1)  # one process: anything goes
    check_shardable(12, 3, 6, 8, 3)  # retain batches hold min(8, 3) = 3 examples


@pytest.mark.parametrize("sizes, match", [
    ((8, 16, 3, 4, 2), "batch_size = 3"),
    ((8, 16, 4, 5, 2), "retain batch size = 5"),
    ((8, 3, 4, 4, 2), "retain batch size = 3"),  # min(4, 3 retain examples)
    ((10, 16, 4, 4, 4), r"last forget batch \(n_forget mod batch_size\) = 2 is not divisible by 4"),
])
def test_check_shardable_refuses_unequal_shares(sizes, match) -> None:
    with pytest.raises(ValueError, match=match):
        check_shardable(*sizes)


def test_check_shardable_last_batch() -> None:
    with pytest.raises(ValueError, match=r"last forget batch \(n_forget mod batch_size\) = 3"):
        check_shardable(11, 16, 4, 4, 2)


def test_unlearn_refuses_unshardable_batches(monkeypatch) -> None:
    import fastngd.distributed
    from fastngd.unlearn import unlearn

    from .conftest import make_classifier_data

    model, forget, retain = make_classifier_data()
    monkeypatch.setattr(fastngd.distributed, "world_size", lambda: 2)
    with pytest.raises(ValueError, match="not divisible by 2"):
        unlearn(model, forget, retain, epochs=1, batch_size=3)

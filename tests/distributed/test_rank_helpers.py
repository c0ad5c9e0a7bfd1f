"""The rank helpers of ``fastngd.distributed``: one process, and 2 gloo ranks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from fastngd import distributed as fdist
from fastngd.errors import InputError

from . import rank_worker
from .launch import run_ranks


def test_single_process_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    run = fdist.init_from_env("cpu")
    assert (run.world, run.rank, run.created) == (1, 0, False)
    assert fdist.rank() == 0 and fdist.is_main()
    assert fdist.on_rank0(lambda: 3) == 3 and fdist.rank0_first(lambda: 4) == 4
    assert fdist.gather_on_rank0("x") == ["x"] and fdist.broadcast_from_rank0(5) == 5
    assert fdist.all_ranks_agree(True) and not fdist.all_ranks_agree(False)
    t = torch.tensor([2.0])
    assert fdist.sum_over_ranks(t) is t
    with pytest.raises(InputError):
        fdist.on_rank0(lambda: (_ for _ in ()).throw(InputError("x")))
    fdist.shutdown(run)


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="needs torch.distributed gloo")
def test_two_ranks(tmp_path: Path) -> None:
    job = run_ranks([str(Path(rank_worker.__file__)), str(tmp_path)], 2, tmp_path, timeout=120)
    assert job.ok, job.report()
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert (r0["world"], r0["rank"], r0["main"]) == (2, 0, True)
    assert (r1["rank"], r1["main"]) == (1, False)
    assert r0["on_rank0"] == {"value": 0} and r1["on_rank0"] == {"value": None}
    assert r1["rank0_first"] == {"value": 10}  # the others run it after rank 0
    assert r0["calls"] == [0, 0] and r1["calls"] == [1]
    # an error the user can fix reaches every rank as itself; a bug as RankFailed
    assert r0["user_error"] == r1["user_error"] == {"error": "InputError: bad file x.json"}
    assert r0["bug"] == {"error": "KeyError: 'k'"}
    assert r1["bug"] == {"error": "RankFailed: rank 0 failed to load: KeyError: 'k'"}
    assert r0["gather"] == [{"r": 0}, {"r": 1}] and r1["gather"] is None
    assert r0["broadcast"] == r1["broadcast"] == 100
    assert r0["agree"] == r1["agree"] == [True, False]
    assert r0["sum"] == r1["sum"] == [3.0]

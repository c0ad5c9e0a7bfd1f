"""One rank of a 2-process gloo job exercising the rank helpers of ``fastngd.distributed``.

Writes ``OUT/rank{r}.json`` with what each helper returned or raised on this rank.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import torch

from fastngd import distributed as fdist
from fastngd.errors import InputError


def _outcome(action: Any) -> Any:
    try:
        return {"value": action()}
    except Exception as exc:  # noqa: BLE001 - recorded for the test
        return {"error": f"{type(exc).__name__}: {exc}"}


def main(out: str) -> int:
    run = fdist.init_from_env("cpu")
    rank = run.rank
    calls: list[int] = []

    def count() -> int:
        calls.append(rank)
        return rank * 10

    def user_error() -> None:
        if fdist.is_main():
            raise InputError("bad file x.json")

    def bug() -> None:
        if fdist.is_main():
            raise KeyError("k")

    results = {
        "world": run.world, "rank": fdist.rank(), "main": fdist.is_main(),
        "on_rank0": _outcome(lambda: fdist.on_rank0(count)),
        "rank0_first": _outcome(lambda: fdist.rank0_first(count)),
        "user_error": _outcome(lambda: fdist.on_rank0(user_error, "failed to read")),
        "bug": _outcome(lambda: fdist.rank0_first(bug, "failed to load")),
        "gather": fdist.gather_on_rank0({"r": rank}),
        "broadcast": fdist.broadcast_from_rank0(rank + 100),
        "agree": [fdist.all_ranks_agree(True), fdist.all_ranks_agree(rank == 0)],
        "sum": fdist.sum_over_ranks(torch.tensor([float(rank + 1)])).tolist(),
        "calls": calls,
    }
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle)
    fdist.shutdown(run)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

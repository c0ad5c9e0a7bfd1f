"""``fastngd.unlearn.unlearn`` on a DDP- and an FSDP2-wrapped classifier, one rank of a
``torchrun`` job (``python -m torch.distributed.run --nproc_per_node 2 unlearn_worker.py OUT``).

Every rank follows the same data order (it depends only on the seed) and processes its half
(rows ``rank::2``) of every forget and retain batch; DDP and FSDP2 average the gradients and
the optimizer averages the losses, so each rank's history must equal the single-process
full-batch one. Each rank writes ``OUT/unlearn{rank}.pt``: ``{name: value or error}`` with

* ``engine``: the loop's history; ``engine:shares``: per step, the forget and retain example
  indices this rank read; ``engine:final``: the gathered final parameters; ``engine:check``:
  the retain check's summary (the ``*-repair`` engines stop early and repair broken retain
  examples, :data:`REPAIR`);
* ``engine-resume`` (for :data:`RESUMED`): the history of a run stopped after
  :data:`STOP_AT` steps with a checkpoint, then resumed on a perturbed fresh model;
  ``engine-resume:final``, its final parameters; ``engine-resume:shares``, the indices read
  before the interruption; ``engine-resume:saves``, how often this rank wrote a checkpoint
  file; ``engine-resume:world``, the world size recorded in it; ``engine-resume:leftovers``,
  the files of the checkpoint folder; ``engine-resume:moments``, the shapes of the Adam
  moments the checkpoint holds;
* ``ddp-failed-write``: the error each rank raised when rank 0 cannot write a checkpoint.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

import fastngd.unlearn.loop
from fastngd.unlearn import load_checkpoint, unlearn

ENGINES = ("ddp", "fsdp2", "fsdp2-root-explicit", "fsdp2-root", "fsdp2-adamw")
"""``fsdp2-root*``: the root module owns a parameter (see :class:`Scale`); ``-explicit``
shards the root with ``reshard_after_forward=True``; ``*-adamw``: the AdamW base
(:data:`ADAMW`), whose moments are sharded like the parameters."""
SETTINGS: dict[str, Any] = {
    "method": "ngdiff", "autolr": True, "autolr_every": 2, "epochs": 2, "batch_size": 4,
    "retain_batch_size": 4, "lr": 0.3, "seed": 5, "backend": "torch",
}
ADAMW: dict[str, Any] = {"optimizer_options": {"base": "adamw", "weight_decay": 0.01},
                         "lr": 0.05}
"""The settings of the ``*-adamw`` engines (per-parameter optimizer state)."""
REPAIR: dict[str, Any] = {"stop_min_steps": 0, "epochs": 6, "autolr": False}
"""The settings of the ``*-repair`` engines: the stopping rule fires from the first step, the
retain check finds broken retain examples and runs repair rounds (9 steps in all)."""
REPAIRED = ("ddp-repair", "fsdp2-repair")
RESUMED = ("ddp", "fsdp2", "fsdp2-adamw")
STOP_AT = 3
"""Steps of the interrupted run (2 steps per epoch: the checkpoint lands mid-epoch)."""
KEYS = ("loss_retain", "loss_forget", "norm_retain", "norm_forget", "cosine", "lr", "lr_scale",
        "retain_repair")
LIST_KEYS = ("forget_indices", "forget_losses")
"""Per-example fields of each record: the whole batch's, gathered from the ranks' shares."""


class Scale(nn.Module):
    """``x · s`` with a learnable 1-element ``s``: a parameter of the FSDP2 root module."""

    def __init__(self) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.s


def make_model(root_param: bool = False) -> nn.Module:
    torch.manual_seed(7)
    layers: list[nn.Module] = [nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)]
    if root_param:
        layers.append(Scale())
    return nn.Sequential(*layers).double()


class Recording(list):  # type: ignore[type-arg]
    """A list of examples that logs the indices read while ``recording`` is on."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__(items)
        self.recording = False
        self.log: list[int] = []

    def __getitem__(self, i: Any) -> Any:
        if self.recording and isinstance(i, int):
            self.log.append(i)
        return super().__getitem__(i)


def make_data() -> tuple[Recording, Recording]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(24, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (24,), generator=g)
    pairs = [(x[i], y[i]) for i in range(24)]
    return Recording(pairs[:8]), Recording(pairs[8:])


def full_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole parameters (gathered from FSDP2 shards; DDP's ``module.`` prefix dropped);
    a collective under a process group."""
    if not dist.is_initialized():
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))


def wrap(model: nn.Module, engine: str) -> nn.Module:
    if engine.startswith("ddp"):
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)
    if engine.startswith("fsdp2"):
        from torch.distributed.fsdp import fully_shard

        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer)
        return fully_shard(model, reshard_after_forward=True if "explicit" in engine else None)
    return model


def run_logged(engine: str, root_param: bool = False, **options: Any) -> dict[str, Any]:
    """One loop run of ``engine`` (``"single"``: no wrapping, ``"single-adamw"`` with the
    AdamW base; with ``root_param`` the single-process model has the parameter of the
    ``fsdp2-root*`` ones): its history
    (selected fields), the indices it read per step, its final parameters."""
    forget, retain = make_data()
    model = wrap(make_model(root_param or "root" in engine), engine)
    if "adamw" in engine:
        options = {**ADAMW, **options}
    if "repair" in engine:
        options = {**REPAIR, **options}
    if options.pop("perturb", False):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)  # the checkpoint must overwrite whatever the model holds
    shares: list[tuple[list[int], list[int]]] = []

    def start_recording(_: nn.Module) -> dict[str, float]:
        forget.recording = retain.recording = True  # the loop starts after the step-0 eval
        return {}

    def end_of_step(_: dict[str, Any]) -> None:
        shares.append((list(forget.log), list(retain.log)))
        forget.log.clear()
        retain.log.clear()

    result = unlearn(model, forget, retain, evaluate=start_recording, callbacks=[end_of_step],
                     **{**SETTINGS, **options})
    history = [{k: rec[k] for k in KEYS + LIST_KEYS} for rec in result.history]
    return {"history": history, "shares": shares, "final": full_params(model),
            "check": result.retain_check}


def run(engine: str, root_param: bool = False) -> list[dict[str, Any]]:
    """The loop's history (selected fields) for ``engine``; see :func:`run_logged`."""
    history: list[dict[str, Any]] = run_logged(engine, root_param)["history"]
    return history


def run_resumed(engine: str, folder: str) -> dict[str, Any]:
    """Stop after :data:`STOP_AT` steps with a checkpoint in ``folder``, then resume on a
    fresh, perturbed model; counts this rank's checkpoint writes."""
    saves = 0
    original = fastngd.unlearn.loop.save_checkpoint

    def counting_save(*args: Any, **kwargs: Any) -> Any:
        nonlocal saves
        saves += 1
        return original(*args, **kwargs)

    fastngd.unlearn.loop.save_checkpoint = counting_save  # type: ignore[assignment]
    try:
        first = run_logged(engine, checkpoint_dir=folder, max_steps=STOP_AT)
        assert len(first["history"]) == STOP_AT, first["history"]
        saved = load_checkpoint(folder)
        assert saved is not None and saved["step"] == STOP_AT
        out = run_logged(engine, checkpoint_dir=folder, resume=True, perturb=True)
    finally:
        fastngd.unlearn.loop.save_checkpoint = original  # type: ignore[assignment]
    out["history"] = first["history"] + out["history"][STOP_AT:]
    out["shares"] = first["shares"]  # the resumed call makes no step-0 eval: not recorded
    out["saves"] = saves
    out["world"] = saved["config"]["world_size"]
    out["moments"] = sorted(tuple(entry["exp_avg"].shape)
                            for entry in saved["optimizer"]["state"].values() if "exp_avg" in entry)
    out["leftovers"] = sorted(os.listdir(folder))
    return out


def run_failed_write(folder: str) -> dict[str, Any]:
    """A DDP run whose rank 0 fails to write its first checkpoint: every rank must raise
    (rank 0 its own error, the others a RuntimeError) instead of waiting forever."""
    original = fastngd.unlearn.loop.save_checkpoint

    def failing_save(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full (simulated)")

    fastngd.unlearn.loop.save_checkpoint = failing_save  # type: ignore[assignment]
    try:
        run_logged("ddp", checkpoint_dir=folder)
    except (OSError, RuntimeError) as exc:
        return {"history": [], "error": f"{type(exc).__name__}: {exc}"}
    finally:
        fastngd.unlearn.loop.save_checkpoint = original  # type: ignore[assignment]
    return {"history": [], "error": None}


def main(out_dir: str) -> int:
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    rank = dist.get_rank()
    results: dict[str, Any] = {}
    try:
        jobs = [(engine, None) for engine in ENGINES + REPAIRED]
        jobs += [(f"{engine}-resume", engine) for engine in RESUMED]
        jobs.append(("ddp-failed-write", None))
        for name, resumed in jobs:
            try:
                if name == "ddp-failed-write":
                    out = run_failed_write(os.path.join(out_dir, "ckpt-failed"))
                elif resumed is None:
                    out = run_logged(name)
                else:
                    out = run_resumed(resumed, os.path.join(out_dir, f"ckpt-{resumed}"))
                results[name] = out.pop("history")
                results.update({f"{name}:{key}": value for key, value in out.items()})
            except Exception:  # noqa: BLE001 - recorded for the test to report
                results[name] = traceback.format_exc()
            dist.barrier()
    finally:
        torch.save(results, os.path.join(out_dir, f"unlearn{rank}.pt"))
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

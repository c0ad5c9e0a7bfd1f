"""One rank of an ``NGDiffTrainer`` run under DDP (gloo, CPU), started with a ``torchrun``
environment: ``python hf_ddp_worker.py OUT``. Rank ``r`` writes ``OUT/rank{r}.pt`` with its
final parameters, the optimizer's counters, the logged history and the losses before/after.
"""
from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from transformers import default_data_collator

from tests.integrations.test_hf_trainer import (
    NGDiffTrainer,
    build_setup,
    fresh_model,
    make_args,
    mean_loss,
)

STEPS = 4


def main(out_dir: str) -> int:
    torch.set_num_threads(1)
    setup = build_setup()
    model = fresh_model(setup)
    before = (mean_loss(model, setup["forget"]), mean_loss(model, setup["retain"]))
    args = make_args(
        os.path.join(out_dir, "run"), learning_rate=0.3, max_steps=STEPS, ddp_backend="gloo",
        logging_steps=2, save_strategy="steps", save_steps=STEPS,
    )
    trainer = NGDiffTrainer(
        model, args, train_dataset=setup["forget"], retain_dataset=setup["retain"],
        retain_batch_size=4, data_collator=default_data_collator, autolr=True, autolr_every=2,
    )
    trainer.train()
    opt = trainer.ngdiff_optimizer
    torch.save(
        {
            "world_size": trainer.args.world_size,
            "wrapped": type(trainer.model_wrapped).__name__,
            "params": torch.cat([p.detach().reshape(-1) for p in model.parameters()]),
            "num_steps": int(opt.num_steps),
            "calls": int(opt.state_dict()["ngdiff"]["calls"]),
            "lr_scale": float(opt.lr_scale),
            "logs": [log for log in trainer.state.log_history if "loss" in log],
            "before": before,
            "after": (mean_loss(model, setup["forget"]), mean_loss(model, setup["retain"])),
        },
        os.path.join(out_dir, f"rank{os.environ['RANK']}.pt"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""Time the embedded target model's training and measure how well it memorised its data.

    python bench/train_embedded.py [--benchmark tofu-synthetic] [--seed 0] [--threads N]

Trains from scratch into a temporary folder (the cache is neither read nor written), then
greedily generates the answers of the whole ``full`` set and prints the training wall time,
ROUGE-L recall and fact accuracy. ``--json PATH`` writes the figures with the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from fastngd.data import format_prompt, tofu_synthetic
from fastngd.eval import fact_accuracy, generate, rouge_l_recall
from fastngd.models import load_model, train_target_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--benchmark", default="tofu-synthetic", choices=["tofu-synthetic"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = train_target_model(args.benchmark, seed=args.seed, out_dir=Path(tmp) / "m",
                                  progress=False)
        train_s = time.perf_counter() - start
        model, tok = load_model(str(path))
    rows = tofu_synthetic(args.seed)["full"]
    preds = generate(model, tok, [format_prompt(r["question"]) for r in rows], max_new_tokens=32)
    recall = sum(rouge_l_recall(preds, [r["answer"] for r in rows])) / len(rows)
    facts = sum(fact_accuracy(preds, [r["fact"] for r in rows])) / len(rows)
    result = {
        "benchmark": args.benchmark, "seed": args.seed, "train_seconds": round(train_s, 1),
        "rouge_l_recall_full": round(recall, 4), "fact_accuracy_full": round(facts, 4),
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "machine": platform.platform(), "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""KnowMem of the embedded muse-synthetic models with MUSE's few-shot prompt and zero-shot.

    python bench/knowmem_shots.py [--seeds 0 1 2] [--split full|retain] [--cache-dir DIR]

For each seed, loads the embedded ``muse-synthetic`` model (``--split full``: the target;
``retain``: the retain-only reference; built on first use and cached like ``fastngd
finetune``) and prints KnowMem (ROUGE-L F1 × 100, :func:`fastngd.eval.evaluate_muse`) of the
forget and retain questions twice: with MUSE's in-context examples (``knowmem/*_icl``) and
without them (zero-shot). A model that knows its facts but not the few-shot layout scores
100 zero-shot and less with the examples.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from fastngd.eval import evaluate_muse, load_muse_eval_data
from fastngd.models.target import load_target_model


def knowmem(model: Any, tokenizer: Any, data: dict[str, Any]) -> tuple[float, float]:
    """``(forget, retain)`` KnowMem of ``model`` on ``data``."""
    aggregate = evaluate_muse(model, tokenizer, data, corpus="muse-synthetic")["aggregate"]
    return aggregate["knowmem_forget"], aggregate["knowmem_retain"]


def zero_shot(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the in-context examples (the ``knowmem/*_icl`` splits), so that
    :func:`fastngd.eval.evaluate_muse` asks every KnowMem question zero-shot; ``data`` itself
    is left as it is."""
    knowmem = {split: rows for split, rows in data["knowmem"].items()
               if not split.endswith("_icl")}
    return {**data, "knowmem": knowmem}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--split", choices=["full", "retain"], default="full")
    ap.add_argument("--cache-dir", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("| seed | forget, few-shot | retain, few-shot | forget, zero-shot | retain, zero-shot |")
    print("|---|---|---|---|---|")
    for seed in args.seeds:
        model, tokenizer, _ = load_target_model(
            None, benchmark="muse-synthetic", seed=seed, cache_dir=args.cache_dir,
            progress=False, split=args.split)
        data = load_muse_eval_data("muse-synthetic", seed=seed)
        cells = [*knowmem(model, tokenizer, data), *knowmem(model, tokenizer, zero_shot(data))]
        print(f"| {seed} | " + " | ".join(f"{c:.1f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()

"""End-to-end wall time of unlearning steps on the embedded model: what GeN costs.

Side by side, in one run, on copies of the same model and the same fixed batches, for every
base of ``--bases`` (``sgd``, ``momentum``, ``adam``, ``adamw``):

* ``<base>:ngdiff+gen10``: :class:`fastngd.NGDiffOptimizer` with ``rule="ngdiff"``, that base,
  and GeN fitting the learning rate along the base's update every 10 steps (two extra retain
  forwards on those steps);
* ``<base>:ngdiff``: the same with a fixed learning rate (``autolr=False``);
* ``gdiff``: gradient difference (SGD) with a fixed learning rate;
* ``grads-only``: the two forward/backward passes alone, no optimizer (the floor).

The configurations take turns in blocks of 10 steps (one full GeN period), so a change of
machine load hits all of them alike; the figure of merit is the **mean** wall time per step
over whole periods (a median would hide the GeN steps); as a machine shared with other work
stalls now and then for seconds, the median over the blocks of each block's mean is reported
too (each block holds exactly one GeN step, so it is kept). Target, for every base:
``<base>:ngdiff+gen10`` at most 1.10× ``<base>:ngdiff``. The load average is recorded.

The model is the embedded default model when it is already in the cache
(:func:`fastngd.models.get_embedded_model`), or, with ``--train-embedded``, trained first;
otherwise a randomly initialised model of the same architecture and sizes
(:func:`fastngd.models.tiny_llama_config`), which costs the same per step.

Usage::

    python bench/unlearning_step.py [--periods 5] [--batch 8] [--seq 48] [--bases sgd,adamw] [--json PATH]
    python bench/unlearning_step.py --smoke
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import format_table, machine_description, write_json
from fastngd import NGDiffOptimizer

PERIOD = 10


def load_model(train: bool, vocab: int, seed: int) -> tuple[torch.nn.Module, str]:
    """The embedded model if cached (or ``train``), else a same-size random model."""
    from fastngd.models import default_cache_dir, embedded_model_key

    path = default_cache_dir() / embedded_model_key("tofu-synthetic", seed)
    if path.exists() or train:
        from fastngd.models import get_embedded_model

        model, _, path = get_embedded_model("tofu-synthetic", seed=seed, progress=False)
        return model, f"embedded ({path})"
    from transformers import LlamaForCausalLM

    from fastngd.models import tiny_llama_config

    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(vocab))
    return model, f"random init, embedded architecture (vocab {vocab}; embedded model not cached)"


def make_runner(name: str, model: torch.nn.Module, retain: torch.Tensor,
                forget: torch.Tensor, lr: float, backend: str) -> Callable[[], None]:
    """One unlearning step of configuration ``name`` on ``model``."""

    def loss(batch: torch.Tensor) -> torch.Tensor:
        return model(input_ids=batch, labels=batch).loss

    if name == "grads-only":
        params = [p for p in model.parameters() if p.requires_grad]

        def run() -> None:
            for batch in (retain, forget):
                for p in params:
                    p.grad = None
                loss(batch).backward()
            for p in params:
                p.grad = None

        return run
    base, _, config = name.rpartition(":")
    rule = "gdiff" if config == "gdiff" else "ngdiff"
    opt = NGDiffOptimizer(model.parameters(), lr=lr, rule=rule, base=base or "sgd",
                          autolr=config == "ngdiff+gen10", autolr_every=PERIOD, backend=backend)

    def run_opt() -> None:
        opt.step(lambda: loss(retain), lambda: loss(forget))

    return run_opt


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--periods", type=int, default=None,
                    help=f"timed blocks of {PERIOD} steps per configuration (default 5)")
    ap.add_argument("--batch", type=int, default=None, help="sequences per batch (default 8)")
    ap.add_argument("--seq", type=int, default=None, help="tokens per sequence (default 48)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--train-embedded", action="store_true",
                    help="train the embedded model first when it is not cached")
    ap.add_argument("--vocab", type=int, default=2500,
                    help="vocabulary of the stand-in model when the embedded one is absent")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's own default)")
    ap.add_argument("--bases", default="sgd,momentum,adam,adamw",
                    help="comma list of the bases under NGDiff (default: all four)")
    ap.add_argument("--smoke", action="store_true", help="a few steps, a few seconds")
    ap.add_argument("--json", metavar="PATH")
    return ap.parse_args(argv)


def time_interleaved(runners: dict[str, Callable[[], None]], periods: int) -> dict[str, list[float]]:
    """Step times (ms) of every configuration, taking turns in blocks of PERIOD steps (any
    PERIOD consecutive steps hold exactly one GeN step), after a warm-up."""
    for run in runners.values():  # warm-up: one GeN step and a few plain ones
        for _ in range(3):
            run()
    samples: dict[str, list[float]] = {n: [] for n in runners}
    for _ in range(periods):
        for n, run in runners.items():
            for _ in range(PERIOD):
                t0 = time.perf_counter()
                run()
                samples[n].append((time.perf_counter() - t0) * 1e3)
    return samples


def block_median(s: list[float]) -> float:
    """Median over the blocks of PERIOD steps of each block's mean step time."""
    return statistics.median(statistics.fmean(s[i:i + PERIOD]) for i in range(0, len(s), PERIOD))


def summarize(samples: dict[str, list[float]], reference: str) -> dict[str, Any]:
    """Per configuration: mean, median, block median, max, and the ratios to the fixed-lr
    configuration of the same base (``reference`` for the others)."""
    results: dict[str, Any] = {}
    for n, s in samples.items():
        base = n.rpartition(":")[0]
        fixed = samples[f"{base}:ngdiff"] if base else samples[reference]
        results[n] = {"config": n, "mean_ms": statistics.fmean(s),
                      "median_ms": statistics.median(s), "block_median_ms": block_median(s),
                      "max_ms": max(s), "steps": len(s),
                      "ratio_vs_fixed_lr": statistics.fmean(s) / statistics.fmean(fixed),
                      "block_ratio_vs_fixed_lr": block_median(s) / block_median(fixed),
                      "samples_ms": s}
    return results


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    periods = args.periods or (1 if args.smoke else 5)
    batch = args.batch or (2 if args.smoke else 8)
    seq = args.seq or (16 if args.smoke else 48)

    model, source = load_model(args.train_embedded, args.vocab, 0)
    model.train(False)  # deterministic closures (no dropout), as GeN requires
    vocab = model.get_input_embeddings().weight.shape[0]
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(0)
    retain = torch.randint(4, vocab, (batch, seq), generator=g).to(device)
    forget = torch.randint(4, vocab, (batch, seq), generator=g).to(device)
    n_params = sum(p.numel() for p in model.parameters())

    bases = args.bases.split(",")
    names = [f"{b}:{c}" for b in bases for c in ("ngdiff+gen10", "ngdiff")] + ["gdiff", "grads-only"]
    runners = {n: make_runner(n, copy.deepcopy(model), retain, forget, args.lr, args.backend)
               for n in names}
    results = summarize(time_interleaved(runners, periods), f"{bases[0]}:ngdiff")
    load = os.getloadavg()
    print(f"model: {source}, {n_params:,} parameters; batch {batch}×{seq} tokens; "
          f"{periods} blocks of {PERIOD} steps each, interleaved; load average {load[0]:.1f}")
    print(format_table(list(results.values()), [
        ("config", "config", ""), ("mean_ms", "mean ms/step", ".1f"),
        ("median_ms", "median", ".1f"), ("max_ms", "max", ".1f"),
        ("block_median_ms", "block median", ".1f"), ("ratio_vs_fixed_lr", "mean vs fixed lr", ".3f"),
        ("block_ratio_vs_fixed_lr", "block median vs fixed lr", ".3f")]))
    print(f"(fixed lr: the same base's ngdiff; gdiff and grads-only against {bases[0]}:ngdiff)")
    payload = {"benchmark": "unlearning_step", "machine": machine_description(device),
               "config": {"model": source, "parameters": n_params, "batch": batch, "seq": seq,
                          "periods": periods, "gen_every": PERIOD, "lr": args.lr,
                          "backend": args.backend, "smoke": args.smoke,
                          "threads": torch.get_num_threads(), "bases": bases,
                          "loadavg_after": list(load)},
               "results": results}
    if args.json:
        write_json(args.json, payload)
        print(f"wrote {args.json}")
    return payload


if __name__ == "__main__":
    main()

"""Data sets of the quality experiments and their target models (for ``bench/quality.py``).

A data set name is ``BENCH`` or ``BENCH/FORGET``:

* ``tofu-synthetic/forget01|05|10``, ``muse-synthetic``: the embedded benchmarks and their
  embedded models (:func:`fastngd.models.target.load_target_model`);
* ``people/forget01|05|10`` (TOFU layout) and ``chronicles`` (MUSE layout): the held-out
  sets of ``bench/heldout_data.py``, written per seed under ``ROOT/data/seed<S>``, read through
  the own-data loaders (``--benchmark tofu|muse-news --data-dir``); their embedded-size model
  is trained on the files (TOFU: the ``full`` split; MUSE: the raw forget and retain texts)
  with the embedded recipe and cached by content hash under ``ROOT/cache/heldout``;
* ``digits``: scikit-learn's digits and the MLP of :mod:`fastngd.reproduce.digits`.

``muse-synthetic`` also has a *retrain reference* (:func:`retrain_model`): the same model
trained on the same material without the forget articles and the forget QA, i.e. what exact
unlearning would give.

Every seed is a different data set (synthetic data are generated from the seed), target
model and unlearning seed, as in ``fastngd reproduce``.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

BENCH_DIR = Path(__file__).resolve().parent
TOFU_LIKE = ("tofu-synthetic", "people")
MUSE_LIKE = ("muse-synthetic", "chronicles")
HELDOUT = {"people": "tofu", "chronicles": "muse-news"}
"""Held-out set → the benchmark name whose own-data loader reads it."""


@dataclass
class Target:
    """What one (data set, seed) provides to a run.

    Attributes:
        kind: ``"tofu"``, ``"muse"`` or ``"digits"``.
        model: the target model (never modified: runs work on copies).
        tokenizer: its tokenizer (None for digits).
        forget, retain: the unlearning datasets (encoded examples or ``(x, y)`` pairs).
        evaluate: ``evaluate(model) -> metrics`` (the benchmark's evaluator).
        source: where the model came from.
    """

    kind: str
    model: Any
    tokenizer: Any
    forget: Any
    retain: Any
    evaluate: Callable[[Any], dict[str, Any]]
    source: str


def split_name(dataset: str) -> tuple[str, str]:
    """``("tofu-synthetic", "forget10")`` from ``"tofu-synthetic/forget10"``; the forget split
    defaults to ``forget10``."""
    bench, _, forget = dataset.partition("/")
    return bench, forget or "forget10"


def heldout_dir(root: Path, bench: str, seed: int) -> Path:
    """The folder of held-out set ``bench`` for ``seed`` (written on first use)."""
    folder = root / "data" / f"seed{seed}"
    if not (folder / bench).exists():
        sys.path.insert(0, str(BENCH_DIR))
        from heldout_data import write_all

        write_all(folder, seed)
    return folder / bench


def _corpus(bench: str, data_dir: Path) -> tuple[list[dict], list[dict], list[str]]:
    """``(qa rows, text rows, vocabulary texts)`` of a held-out set, as the own-data path
    trains them: TOFU layout → the ``full`` QA split; MUSE layout → the raw forget and retain
    texts. The vocabulary covers every string of every file (and the prompt template)."""
    from fastngd.data.tokenize import PROMPT_TEMPLATE

    vocab = [PROMPT_TEMPLATE.format(question="")]
    for path in sorted(data_dir.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            vocab.extend(_strings(json.loads(line)))
    if HELDOUT[bench] == "tofu":
        rows = [json.loads(x) for x in (data_dir / "full.jsonl").read_text().splitlines()]
        return [{"question": r["question"], "answer": r["answer"]} for r in rows], [], vocab
    texts = []
    for split in ("forget", "retain1", "retain2"):
        lines = (data_dir / "raw" / f"{split}.jsonl").read_text().splitlines()
        texts += [{"text": json.loads(x)["text"]} for x in lines]
    return [], texts, vocab


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def train_heldout_model(bench: str, data_dir: Path, seed: int, cache: Path) -> Path:
    """The embedded-size model trained on held-out set ``bench`` (cached by content hash).

    Recipe: :func:`fastngd.models.training.default_recipe` of the embedded benchmark of the
    same layout (TOFU: ``tofu-synthetic``'s; MUSE: ``muse-synthetic``'s)."""
    from dataclasses import asdict

    from torch.utils.data import ConcatDataset
    from transformers import LlamaForCausalLM

    from fastngd.atomic import write_folder
    from fastngd.data.tokenize import QADataset, TextDataset
    from fastngd.models.config import tiny_llama_config
    from fastngd.models.tokenizer import build_word_tokenizer
    from fastngd.models.training import default_recipe, fit

    embedded = "tofu-synthetic" if HELDOUT[bench] == "tofu" else "muse-synthetic"
    recipe = default_recipe(embedded)
    qa, texts, vocab = _corpus(bench, data_dir)
    key = hashlib.sha256(json.dumps({"recipe": asdict(recipe), "qa": qa, "texts": texts,
                                     "vocab": vocab, "seed": seed}, sort_keys=True,
                                    default=str).encode()).hexdigest()[:12]
    out = cache / "heldout" / f"{bench}-seed{seed}-{key}"
    if out.exists():
        return out
    tokenizer = build_word_tokenizer(vocab)
    config = tiny_llama_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                               bos_token_id=tokenizer.bos_token_id,
                               eos_token_id=tokenizer.eos_token_id, **dict(recipe.model))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    parts: list[Any] = []
    if qa:
        parts.append(QADataset(qa, tokenizer, recipe.max_length))
    if texts:
        parts.append(TextDataset(texts, tokenizer, recipe.max_length))
    fit(model, ConcatDataset(parts), tokenizer, recipe, seed=seed, progress=False)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    write_folder(out, write, False)
    return out


def _tofu_evaluator(model_bench: str, forget: str, data_dir: Path | None,
                    seed: int) -> Callable[[Any, Any], dict[str, Any]]:
    from fastngd.eval import evaluate_benchmark

    def evaluate(model: Any, tokenizer: Any) -> dict[str, Any]:
        res = evaluate_benchmark(model, tokenizer, model_bench, forget_split=forget,
                                 data_dir=data_dir, seed=seed)
        agg = res["aggregate"]
        f, r = agg["forget"], agg.get("retain") or {}
        examples = (res.get("per_example") or {}).get("forget") or []
        return {"forget_rouge_l_recall": f["rougeL_recall"],
                "forget_fact_accuracy": f.get("fact_accuracy"),
                "forget_probability": f.get("probability"),
                "retain_rouge_l_recall": r.get("rougeL_recall"),
                "retain_fact_accuracy": r.get("fact_accuracy"),
                "retain_probability": r.get("probability"),
                "model_utility": agg.get("model_utility"),
                "truth_ratio": agg["seed_paper"]["truth_ratio"],
                "verbmem": agg["seed_paper"]["verbmem"],
                "privleak": agg.get("privleak"),
                "forget_generations": [e["generation"][:160] for e in examples[:6]]}

    return evaluate


def _muse_evaluator(model_bench: str, data_dir: Path | None,
                    seed: int) -> Callable[[Any, Any], dict[str, Any]]:
    from fastngd.eval import evaluate_benchmark

    def evaluate(model: Any, tokenizer: Any) -> dict[str, Any]:
        agg = evaluate_benchmark(model, tokenizer, model_bench, data_dir=data_dir,
                                 seed=seed)["aggregate"]
        return {k: agg.get(k) for k in ("verbmem_forget", "knowmem_forget", "knowmem_retain",
                                        "privleak")}

    return evaluate


def _digits_target(seed: int) -> Target:
    from fastngd.reproduce.digits import accuracy, load_digits_data, train_classifier

    data = load_digits_data(seed)
    model = train_classifier(data, seed=seed)
    f = data.y_train == 0
    forget = list(zip(data.x_train[f], data.y_train[f]))
    retain = list(zip(data.x_train[~f], data.y_train[~f]))

    def evaluate(m: Any) -> dict[str, Any]:
        out = {}
        for split, x, y in (("train", data.x_train, data.y_train),
                            ("test", data.x_test, data.y_test)):
            mask = y == 0
            out[f"{split}_forget_accuracy"] = accuracy(m, x[mask], y[mask])
            out[f"{split}_retain_accuracy"] = accuracy(m, x[~mask], y[~mask])
        return out

    return Target("digits", model, None, forget, retain, evaluate, "digits-mlp")


def load_target(dataset: str, seed: int, root: Path) -> Target:
    """The :class:`Target` of ``dataset`` for ``seed`` (models cached under ``root/cache``)."""
    from fastngd.data import QADataset, rows_dataset
    from fastngd.data.loading import load_unlearning_rows
    from fastngd.models import load_model
    from fastngd.models.target import load_target_model

    bench, forget = split_name(dataset)
    if bench == "digits":
        return _digits_target(seed)
    cache = root / "cache"
    data_dir: Path | None = None
    if bench in HELDOUT:
        data_dir = heldout_dir(root, bench, seed)
        path = train_heldout_model(bench, data_dir, seed, cache)
        model, tokenizer = load_model(str(path), dtype="float32")
        source, model_bench = str(path), HELDOUT[bench]
    else:
        model, tokenizer, source = load_target_model(None, benchmark=bench, seed=seed,
                                                     cache_dir=cache, progress=False)
        model_bench = bench
    f_rows, r_rows = load_unlearning_rows(model_bench, forget, data_dir=data_dir, seed=seed)
    if bench in TOFU_LIKE:
        f_set, r_set = QADataset(f_rows, tokenizer, 128), QADataset(r_rows, tokenizer, 128)
        scorer = _tofu_evaluator(model_bench, forget, data_dir, seed)
        kind = "tofu"
    else:
        f_set, r_set = rows_dataset(f_rows, tokenizer, 256), rows_dataset(r_rows, tokenizer, 256)
        scorer = _muse_evaluator(model_bench, data_dir, seed)
        kind = "muse"
    return Target(kind, model, tokenizer, f_set, r_set, lambda m: scorer(m, tokenizer), source)


RETRAIN_SPLITS = {"muse-synthetic": "retain"}
"""Data sets with a retrain reference → the training split of their retain-only model."""


def retrain_model(dataset: str, seed: int, root: Path) -> Target:
    """The retain-only model of ``dataset`` (one of :data:`RETRAIN_SPLITS`), with the
    target's evaluator: trained from the same seed and recipe as the target on its material
    without the forget set (built on first use, cached under ``ROOT/cache``)."""
    from fastngd.models.target import load_target_model

    bench, _ = split_name(dataset)
    model, tokenizer, source = load_target_model(None, benchmark=bench, seed=seed,
                                                 cache_dir=root / "cache", progress=False,
                                                 split=RETRAIN_SPLITS[bench])
    scorer = _muse_evaluator(bench, None, seed)
    return Target("muse", model, tokenizer, None, None, lambda m: scorer(m, tokenizer), source)

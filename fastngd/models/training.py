"""Training the embedded default models from scratch on the synthetic benchmarks."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from tqdm.auto import tqdm
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from fastngd.atomic import write_folder
from fastngd.data.tokenize import (
    PROMPT_TEMPLATE,
    Encoding,
    QADataset,
    collate_right_pad,
    encode_text,
)
from fastngd.errors import InputError, UsageError
from fastngd.models.config import tiny_llama_config
from fastngd.models.tokenizer import build_word_tokenizer

__all__ = [
    "BENCHMARKS",
    "SYNTHETIC_BENCHMARKS",
    "Corpus",
    "TrainingRecipe",
    "benchmark_corpus",
    "check_embedded_data",
    "default_recipe",
    "fit",
    "text_windows",
    "train_target_model",
    "user_corpus",
]

#: The built-in benchmarks, generated from a seed.
SYNTHETIC_BENCHMARKS: tuple[str, ...] = ("tofu-synthetic", "muse-synthetic")

#: Benchmarks an embedded model can be trained on: the built-in ones, and the hub layouts
#: whose files a user brings (``data_dir``) or the hub serves.
BENCHMARKS: tuple[str, ...] = (*SYNTHETIC_BENCHMARKS, "tofu", "muse-news", "muse-books")

#: Name of the JSON file written beside the weights with the training record.
TRAINING_RECORD = "fastngd_training.json"

#: ``(qa_rows, text_rows, vocabulary_texts)``: the training material of an embedded model
#: (:func:`benchmark_corpus`).
Corpus = tuple[list[dict[str, str]], list[dict[str, str]], list[str]]


@dataclass(frozen=True)
class TrainingRecipe:
    """Hyper-parameters of :func:`train_target_model`.

    AdamW(lr, betas=(0.9, 0.98), weight_decay) over ``epochs`` passes of shuffled batches of
    ``batch_size`` examples; the learning rate warms up linearly over the first
    ``warmup_fraction`` of the steps and then follows a cosine decay to ``lr * min_lr_ratio``.
    Gradients are clipped to global norm ``grad_clip``. ``model`` overrides fields of
    :func:`fastngd.models.tiny_llama_config`.
    """

    epochs: int = 40
    lr: float = 1e-3
    batch_size: int = 32
    weight_decay: float = 0.0
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    max_length: int = 128
    model: Mapping[str, Any] = field(default_factory=dict)


def default_recipe(benchmark: str) -> TrainingRecipe:
    """The recipe of the embedded model of ``benchmark`` (see :data:`BENCHMARKS`): a small
    model trained from scratch, hence rates and lengths unlike the fine-tuning of a
    pretrained model.

    TOFU layout (``tofu-synthetic``, ``tofu``): 30 epochs, lr 1e-3, batch 32, max length 128
    (``tofu-synthetic``: 490 QA pairs, 480 steps). MUSE layout (``muse-synthetic``,
    ``muse-news``, ``muse-books``): 60 epochs, lr 2e-3, batch 16, max length 256
    (``muse-synthetic``: 24 articles, 74 QA pairs and 54 few-shot rows, 600 steps). Raises
    ``ValueError`` for an unknown benchmark.
    """
    _check_benchmark(benchmark)
    if benchmark.startswith("tofu"):
        return TrainingRecipe(epochs=30)
    return TrainingRecipe(epochs=60, lr=2e-3, batch_size=16, max_length=256)


def _check_benchmark(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {list(BENCHMARKS)}")


def check_embedded_data(benchmark: str, data_dir: str | Path | None) -> None:
    """The embedded model of a hub layout (``tofu``, ``muse-news``, ``muse-books``) trains on
    a user's files: refuse it without ``data_dir`` (a UsageError naming ``--data-dir``)."""
    _check_benchmark(benchmark)
    if benchmark not in SYNTHETIC_BENCHMARKS and data_dir is None:
        raise UsageError(
            f"the embedded model of --benchmark {benchmark} trains on your files: pass "
            f"--data-dir (a folder in the {benchmark} layout), or --model with a Hugging Face "
            "id or folder"
        )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def benchmark_corpus(
    benchmark: str, seed: int = 0, *, split: str = "full", data_dir: str | Path | None = None,
) -> Corpus:
    """The training material of ``benchmark``'s embedded model.

    Returns ``(qa_rows, text_rows, vocabulary_texts)``: QA pairs trained with answer-only
    loss, raw texts trained on every token, and every string of every config (prompts
    template included) from which the tokenizer vocabulary is built, so that no evaluation
    text contains an unknown word (the vocabulary does not depend on ``split``, so a target
    model and its retain-only reference share one tokenizer).

    ``tofu-synthetic``: the authors of ``split`` (``"full"``, the target model, or a retain
    split ``"retain90"``/``"retain95"``/``"retain99"``, the retain-only reference model of
    forget quality) plus the real-authors and world-facts sets, the knowledge a pretrained
    model brings; the holdout authors are never trained on. ``muse-synthetic``: ``split``
    ``"full"`` trains the raw forget, retain1 and retain2 texts and the forget and retain
    knowmem QA, each pair alone and asked after other pairs in MUSE's few-shot layout
    (:func:`fastngd.data.few_shot.few_shot_rows`); ``"retain"`` leaves out the forget texts
    and the forget QA.

    A user's data (``tofu``, ``muse-news``, ``muse-books``: the files in ``data_dir``,
    required; see :func:`user_corpus`): TOFU layout, the QA pairs of ``split``
    (``"full"`` or a retain split present in the files) plus ``real_authors`` and
    ``world_facts`` when present; MUSE layout, the raw texts (``"full"``: forget, retain1,
    retain2; ``"retain"``: without forget), no QA. The vocabulary covers every file present.

    Raises ``ValueError`` for an unknown benchmark or split (``UsageError``, naming
    ``--split``, for a user's data), :class:`fastngd.errors.InputError` for unreadable
    files.
    """
    _check_benchmark(benchmark)
    if benchmark not in SYNTHETIC_BENCHMARKS:
        return user_corpus(benchmark, split=split, data_dir=data_dir)
    if benchmark == "tofu-synthetic":
        from fastngd.data import tofu_synthetic

        data: Mapping[str, Any] = tofu_synthetic(seed=seed)
        retain_splits = [c for c in data if c.startswith("retain") and c[6:].isdigit()]
        if split != "full" and split not in retain_splits:
            raise ValueError(
                f"benchmark_corpus: tofu-synthetic split must be 'full' or a retain split "
                f"(retain90, retain95, retain99), got {split!r}"
            )
        qa = [
            {"question": r["question"], "answer": r["answer"]}
            for config in (split, "real_authors", "world_facts")
            for r in data[config]
        ]
        texts: list[dict[str, str]] = []
    else:
        from fastngd.data import muse_synthetic  # type: ignore[attr-defined]
        from fastngd.data.loading import trained_qa_rows

        if split not in ("full", "retain"):
            raise ValueError(
                f"benchmark_corpus: muse-synthetic split must be 'full' or 'retain', got {split!r}"
            )
        data = muse_synthetic(seed=seed)
        raw = data["raw"]
        retain_texts = ["retain1", "retain2"]
        text_splits = retain_texts if split == "retain" else ["forget", *retain_texts]
        texts = [{"text": r["text"]} for name in text_splits if name in raw for r in raw[name]]
        forget_qa, retain_qa = trained_qa_rows(benchmark, data["knowmem"])  # as unlearning
        qa = retain_qa if split == "retain" else [*forget_qa, *retain_qa]
    vocab_texts = [PROMPT_TEMPLATE.format(question="")]
    vocab_texts.extend(s for rows in data.values() for s in _strings(_all_values(rows)))
    return qa, texts, vocab_texts


def user_corpus(
    benchmark: str, *, split: str = "full", data_dir: str | Path | None = None,
) -> Corpus:
    """:func:`benchmark_corpus` of a user's data in the TOFU (``tofu``) or MUSE
    (``muse-news``, ``muse-books``) layout: every split present in ``data_dir`` is read once
    (:func:`fastngd.data.loading.load_all_splits`)."""
    from fastngd.data.loading import check_data_dir, is_retain_split, load_all_splits

    check_embedded_data(benchmark, data_dir)
    check_data_dir(benchmark, data_dir)
    data = load_all_splits(benchmark, data_dir=data_dir)
    where = f"--data-dir {data_dir}"
    texts: list[dict[str, str]] = []
    qa: list[dict[str, str]] = []
    if benchmark == "tofu":
        splits = sorted(c for c in data if c == "full" or is_retain_split(c))
        if split not in splits:
            raise UsageError(
                f"--split {split} is not in {where}; the splits there to train on: "
                f"{', '.join(splits) or 'none'} (full: the target model; retainNN: the "
                "retain-only reference of forget quality)"
            )
        qa = [{"question": r["question"], "answer": r["answer"]}
              for config in (split, "real_authors", "world_facts") if config in data
              for r in data[config]["train"]]
    else:
        if split not in ("full", "retain"):
            raise UsageError(f"--split for {benchmark} must be full or retain, got {split!r}")
        raw = data.get("raw", {})
        if "forget" not in raw or "retain1" not in raw:
            raise InputError(
                f"{where} has no raw/forget and raw/retain1 texts: the embedded model of "
                f"{benchmark} trains on them"
            )
        names = ["retain1", "retain2"] if split == "retain" else ["forget", "retain1", "retain2"]
        texts = [{"text": r["text"]} for name in names if name in raw for r in raw[name]]
    vocab_texts = [PROMPT_TEMPLATE.format(question="")]
    vocab_texts.extend(s for rows in data.values() for s in _strings(_all_values(rows)))
    return qa, texts, vocab_texts


def _all_values(rows: Any) -> list[Any]:
    """Every value of a config: a list of rows, or a mapping of splits to lists of rows."""
    if isinstance(rows, Mapping):
        return [v for split in rows.values() for v in _all_values(split)]
    return [v for row in rows for v in row.values()]


def _lr_at(step: int, total: int, recipe: TrainingRecipe) -> float:
    warmup = max(1, int(recipe.warmup_fraction * total))
    if step < warmup:
        return recipe.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    floor = recipe.lr * recipe.min_lr_ratio
    return floor + (recipe.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_target_model(
    benchmark: str = "tofu-synthetic",
    *,
    seed: int = 0,
    out_dir: str | Path,
    epochs: int | None = None,
    recipe: TrainingRecipe | None = None,
    progress: bool = True,
    overwrite: bool = False,
    split: str = "full",
    data_dir: str | Path | None = None,
    corpus: Corpus | None = None,
) -> Path:
    """Train the embedded model of ``benchmark`` from scratch and save it to ``out_dir``.

    ``split`` selects the training material (:func:`benchmark_corpus`): ``"full"`` for the
    target model, a retain split (``"retain90"``; MUSE layout: ``"retain"``) for the
    retain-only reference model of forget quality; ``data_dir`` holds a user's files of a
    hub benchmark (``tofu``, ``muse-news``, ``muse-books``); ``corpus``, that material when
    the caller has built it already (it is then not read again).

    A word-level tokenizer (:func:`fastngd.models.build_word_tokenizer`) is built on
    :func:`benchmark_corpus`'s vocabulary texts and a Llama model of
    :func:`fastngd.models.tiny_llama_config` is initialised with ``torch.manual_seed(seed)``
    (inside a forked RNG, the caller's RNG state is untouched); it is trained with
    ``recipe`` (default :func:`default_recipe`; ``epochs`` overrides its epochs) on the QA
    pairs (answer-only loss) and raw texts (every token; a text longer than the recipe's
    ``max_length`` is cut into consecutive windows, so all of it is trained), shuffled by a
    generator seeded with ``seed``. Model, tokenizer and a ``fastngd_training.json`` record
    (benchmark, split, data folder, recipe, seed, final loss, seconds) are written with
    ``save_pretrained`` into a temporary sibling
    directory that is then renamed to ``out_dir``, so ``out_dir`` is either complete or
    absent. With ``overwrite``, an existing ``out_dir`` is kept and only the files written
    here replace their namesakes (nothing else in it is touched). Returns ``out_dir``.
    Raises ``FileExistsError`` when ``out_dir`` exists (without ``overwrite``) and
    ``ValueError`` for an unknown benchmark or ``epochs`` < 1.
    """
    _check_benchmark(benchmark)
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"train_target_model: output directory {out} already exists")
    recipe = _with_epochs(recipe or default_recipe(benchmark), epochs)
    if corpus is None:
        corpus = benchmark_corpus(benchmark, seed, split=split, data_dir=data_dir)
    qa_rows, text_rows, vocab_texts = corpus
    tokenizer = build_word_tokenizer(vocab_texts)
    model = _init_model(tokenizer, recipe, seed)
    start = time.perf_counter()
    final_loss = fit(model, _training_set(qa_rows, text_rows, tokenizer, recipe.max_length),
                     tokenizer, recipe, seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    record = {
        "benchmark": benchmark,
        "split": split,
        "data_dir": str(data_dir) if data_dir is not None else None,
        "seed": seed,
        "recipe": asdict(recipe),
        "final_loss": final_loss,
        "train_seconds": seconds,
        "n_qa": len(qa_rows),
        "n_texts": len(text_rows),
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / TRAINING_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True))

    write_folder(out, write, overwrite)
    return out


def _with_epochs(recipe: TrainingRecipe, epochs: int | None) -> TrainingRecipe:
    """``recipe`` with ``epochs`` in place of its own (when given); ValueError if < 1."""
    if epochs is not None:
        recipe = TrainingRecipe(**{**asdict(recipe), "epochs": epochs})
    if recipe.epochs < 1:
        raise ValueError(f"train_target_model: epochs must be >= 1, got {recipe.epochs}")
    return recipe


def _training_set(qa_rows: list[dict[str, str]], text_rows: list[dict[str, str]],
                  tokenizer: PreTrainedTokenizerFast, max_length: int) -> Dataset[Any]:
    """The QA pairs (answer-only loss) and the raw texts' windows, as one dataset."""
    datasets: list[Any] = []  # QADataset and the text windows' list of encodings
    if qa_rows:
        datasets.append(QADataset(qa_rows, tokenizer, max_length))
    if text_rows:
        datasets.append(text_windows(text_rows, tokenizer, max_length))
    return ConcatDataset(datasets)


def text_windows(rows: list[dict[str, str]], tokenizer: PreTrainedTokenizerFast,
                 max_length: int) -> list[Encoding]:
    """Every raw text as training examples of at most ``max_length`` tokens: the encoded text
    (:func:`fastngd.data.encode_text`: special tokens, words, EOS) cut into consecutive
    windows, each token carrying the loss. A text that fits gives one example, exactly
    :func:`~fastngd.data.encode_text`'s."""
    windows: list[Encoding] = []
    for row in rows:
        ids = encode_text(tokenizer, row["text"], max_length=1 << 30)["input_ids"]
        for start in range(0, len(ids), max_length):
            part = ids[start:start + max_length]
            windows.append(Encoding({"input_ids": part, "attention_mask": [1] * len(part),
                                     "labels": list(part)}))
    return windows


def _init_model(
    tokenizer: PreTrainedTokenizerFast, recipe: TrainingRecipe, seed: int
) -> LlamaForCausalLM:
    config = tiny_llama_config(
        len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **dict(recipe.model),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


def fit(
    model: LlamaForCausalLM,
    dataset: Dataset[Any],
    tokenizer: PreTrainedTokenizerFast,
    recipe: TrainingRecipe,
    *,
    seed: int = 0,
    progress: bool = True,
) -> float:
    """Train ``model`` in place on encoded examples (``input_ids``/``labels``) with ``recipe``.

    The loss is the mean token cross-entropy over the labels that are not -100 (the model's
    own causal-LM loss). Returns the mean loss of the last epoch. Raises ``ValueError`` on
    an empty dataset.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("fit: the training dataset is empty")
    generator = torch.Generator().manual_seed(seed)
    pad_id = int(tokenizer.pad_token_id)
    loader = DataLoader(
        dataset,
        batch_size=recipe.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=lambda batch: collate_right_pad(batch, pad_id),
    )
    total = recipe.epochs * len(loader)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, betas=(0.9, 0.98), weight_decay=recipe.weight_decay
    )
    model.train()
    step = 0
    epoch_loss = float("nan")
    bar = tqdm(total=total, desc="train", disable=not progress, leave=False)
    try:
        for _ in range(recipe.epochs):
            losses: list[float] = []
            for batch in loader:
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(step, total, recipe)
                loss = model(**batch).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                optimizer.step()
                losses.append(float(loss.detach()))
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            epoch_loss = sum(losses) / len(losses)
    finally:
        bar.close()
    model.eval()
    return epoch_loss

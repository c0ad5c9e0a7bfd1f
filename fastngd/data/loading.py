"""What each command loads from a benchmark, and nothing more.

* unlearning a TOFU-style benchmark reads the forget split and its retain split
  (:func:`load_unlearning_rows`); a MUSE-style one reads the raw forget and retain texts, and
  the knowmem QA pairs its embedded target was trained on (:data:`TRAINED_QA`);
* evaluation reads the configs the protocol scores (:func:`fastngd.eval.load_tofu_eval_data`,
  :func:`fastngd.eval.load_muse_eval_data`), the optional ones with ``optional=True``;
* training the embedded model on a user's files reads every split present
  (:func:`load_all_splits`).

Every failure to read a required split is one :class:`fastngd.errors.InputError` naming the
benchmark, the config and split, and the cause; flags that do not apply (``--data-dir`` with
a built-in benchmark) are a :class:`fastngd.errors.UsageError`. Before any work,
:func:`check_data_dir` refuses a ``--data-dir`` with no file of the benchmark's layout
(naming the ``--benchmark`` of the other layout, or the file extensions read) and
:func:`check_training_files` one without the files the embedded model trains on; split
names the benchmark does not have (``forget20``) are refused with the supported ones
(:func:`forget_splits`, :func:`retain_splits`). Messages speak the command line's language
(``--data-dir``, ``--forget``, ``--seed``).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastngd.data.few_shot import few_shot_rows
from fastngd.data.optional import MissingDataWarning
from fastngd.data.registry import get_benchmark, load_benchmark
from fastngd.errors import InputError, UsageError, UserError

__all__ = [
    "MUSE_UNLEARN_SPLITS",
    "QA_BENCHMARKS",
    "TEXT_BENCHMARKS",
    "TRAINED_QA",
    "TofuConfigs",
    "check_data_dir",
    "check_training_files",
    "forget_splits",
    "is_retain_split",
    "load_all_splits",
    "load_muse_data",
    "load_split",
    "load_unlearning_rows",
    "muse_unlearning_rows",
    "retain_splits",
    "tofu_configs",
    "trained_qa_rows",
]

QA_BENCHMARKS: tuple[str, ...] = ("tofu-synthetic", "tofu")
"""Benchmarks of question-answer rows (TOFU layout): unlearned, evaluated (the TOFU
protocol; the others use the MUSE protocol) and fine-tuned on as QA pairs."""

TEXT_BENCHMARKS: tuple[str, ...] = ("muse-synthetic", "muse-news", "muse-books")
"""Benchmarks of raw texts (MUSE layout)."""

MUSE_UNLEARN_SPLITS: tuple[tuple[str, str, bool], ...] = (
    ("raw", "forget", True), ("raw", "retain1", True), ("raw", "retain2", False),
)
"""``(config, split, required)`` read to unlearn a MUSE-style benchmark."""

TRAINED_QA: dict[str, tuple[str, str]] = {"muse-synthetic": ("forget_qa", "retain_qa")}
"""MUSE-style benchmarks whose embedded target model is trained on knowmem QA pairs beside the
raw texts (:func:`fastngd.models.training.benchmark_corpus`) → the knowmem splits of the
forget and of the retain facts. The target learns each pair alone and asked after other pairs
(:mod:`fastngd.data.few_shot`), the layout of MUSE's few-shot KnowMem prompt; answer-only
loss both ways. Their unlearning sets hold those rows too, so that the forget set is exactly
the training material that the retain-only (retrain) model leaves out, and the retain set the
material it keeps. A user's MUSE files (``muse-news``, ``muse-books``) are not
listed: their embedded model trains on the raw texts only, and MUSE's knowmem questions are
evaluation data that no target saw."""

_READ_ERRORS = (OSError, ValueError, TypeError, KeyError, UnicodeError)


@dataclass(frozen=True)
class TofuConfigs:
    """The TOFU configs of a forget split: ``forget`` (e.g. ``forget10``), its ``retain``
    complement (``retain90``), ``forget_perturbed`` (truth-ratio answers) and the optional
    retain-type evaluation configs ``extras``."""

    forget: str
    retain: str
    forget_perturbed: str
    extras: tuple[str, ...] = ("retain_perturbed", "real_authors_perturbed",
                               "world_facts_perturbed")


def tofu_configs(forget: str, benchmark: str | None = None) -> TofuConfigs:
    """The configs belonging to ``forget`` (``forgetNN`` → ``retain{100-NN}``); a
    UsageError names ``--forget`` otherwise, and, with ``benchmark``, when ``forget`` is not
    one of its :func:`forget_splits` (its loader reads no other)."""
    pct = forget.replace("forget", "") if forget.startswith("forget") else ""
    if not pct.isdigit() or not 0 < int(pct) < 100:
        raise UsageError(f"--forget must look like forget01/forget05/forget10, got {forget!r}")
    if benchmark is not None and forget not in forget_splits(benchmark):
        raise UsageError(f"--forget {forget} is not a forget split of {benchmark}; "
                         f"supported: {', '.join(forget_splits(benchmark))}")
    return TofuConfigs(forget, f"retain{100 - int(pct):02d}", f"{forget}_perturbed")


def is_retain_split(name: str) -> bool:
    """Whether ``name`` is a TOFU retain split, ``retainNN`` with 0 < NN < 100."""
    digits = name[6:] if name.startswith("retain") else ""
    return digits.isdigit() and 0 < int(digits) < 100


def forget_splits(benchmark: str) -> tuple[str, ...]:
    """The forget splits (``forgetNN`` configs) of ``benchmark``, sorted: ``("forget01",
    "forget05", "forget10")`` for the TOFU-style ones, ``()`` for the others."""
    return tuple(sorted(c for c in get_benchmark(benchmark).splits
                        if c.startswith("forget") and c[6:].isdigit()))


def retain_splits(benchmark: str) -> tuple[str, ...]:
    """The retain splits (``retainNN`` configs) of ``benchmark``, sorted: ``("retain90",
    "retain95", "retain99")`` for the TOFU-style ones, ``()`` for the others."""
    return tuple(sorted(c for c in get_benchmark(benchmark).splits if is_retain_split(c)))


_LAYOUTS: dict[str, tuple[str, str, str]] = {
    "tofu": ("TOFU", "forget10/train.jsonl, full/train.jsonl, ...", "--benchmark tofu"),
    "muse-news": ("MUSE", "raw/forget.jsonl, verbmem/forget.jsonl, knowmem/forget_qa.jsonl, ...",
                  "--benchmark muse-news or --benchmark muse-books"),
}
"""A hub benchmark of each layout → ``(layout, example files, the flag that reads it)``."""


def check_data_dir(benchmark: str, data_dir: str | Path | None) -> None:
    """Refuse ``--data-dir`` with a built-in (generated) benchmark, a ``--data-dir`` that is
    not a folder, and one that holds no file of ``benchmark``'s layout: a UsageError naming
    the ``--benchmark`` that reads it when its files are in the other layout (TOFU, MUSE),
    an InputError naming the extensions read (and the other extensions found) otherwise."""
    from fastngd.data.files import extensions_text, foreign_suffixes, has_split_file

    bench = get_benchmark(benchmark)
    if data_dir is None:
        return
    if bench.synthetic:
        hub = "tofu" if benchmark.startswith("tofu") else "muse-news"
        raise UsageError(
            f"--data-dir does not apply to the built-in benchmark {benchmark} (it is generated "
            f"from --seed); to read files, pass --benchmark {hub} --data-dir DIR (write such "
            f"files with: fastngd data export {benchmark} --out DIR)"
        )
    if not Path(data_dir).is_dir():
        raise InputError(f"--data-dir {data_dir} is not a folder")

    def holds(name: str) -> bool:
        return any(has_split_file(data_dir, config, split)
                   for config, splits in get_benchmark(name).splits.items() for split in splits)

    if holds(benchmark):
        return
    own = "tofu" if benchmark in QA_BENCHMARKS else "muse-news"
    for other, (layout, example, flag) in _LAYOUTS.items():
        if other != own and holds(other):
            raise UsageError(f"--data-dir {data_dir} holds no {benchmark} file but is in the "
                             f"{layout} layout ({example}): pass {flag}")
    layout, example, _ = _LAYOUTS[own]
    foreign = foreign_suffixes(data_dir)
    found = f"; found only {', '.join(foreign)} files" if foreign else ""
    raise InputError(f"--data-dir {data_dir} holds no {benchmark} file: the files read are "
                     f"{extensions_text()} in the {layout} layout ({example}){found}")


def check_training_files(benchmark: str, data_dir: str | Path | None,
                         split: str = "full") -> None:
    """InputError when ``data_dir`` (a user's files of a hub layout) lacks a file the
    embedded model of ``benchmark`` trains on: TOFU layout, the config ``split`` (``full``,
    the target model, or a retain split); MUSE layout, ``raw/forget`` and ``raw/retain1``.
    The message names the file names and extensions looked for, and no command-line flag
    (every command that trains the embedded model calls it). Nothing is checked without
    ``data_dir`` or for a built-in benchmark."""
    from fastngd.data.files import describe_candidates, has_split_file

    if data_dir is None or get_benchmark(benchmark).synthetic:
        return
    needed = ([(split, "train")] if benchmark in QA_BENCHMARKS
              else [("raw", "forget"), ("raw", "retain1")])
    missing = [pair for pair in needed if not has_split_file(data_dir, *pair)]
    if missing:
        looked = "; ".join(describe_candidates(*pair) for pair in missing)
        raise InputError(f"--data-dir {data_dir} has no file the embedded {benchmark} model "
                         f"trains on (looked for {looked})")


def load_split(
    benchmark: str, config: str, split: str = "train", *, data_dir: str | Path | None = None,
    seed: int = 0, required: bool = True, purpose: str = "",
) -> list[dict[str, Any]] | None:
    """Rows of ``benchmark``/``config``/``split``; ``data_dir`` only for hub benchmarks.

    A split that cannot be read raises InputError when ``required``; otherwise it is
    skipped with a :class:`fastngd.data.MissingDataWarning` (``purpose`` says what is lost)
    and None is returned.
    """
    kwargs: dict[str, Any] = {"seed": seed}
    if data_dir is not None and not get_benchmark(benchmark).synthetic:
        kwargs["data_dir"] = data_dir
    try:
        return load_benchmark(benchmark, config, split, **kwargs)
    except _READ_ERRORS as exc:
        if isinstance(exc, UserError):
            error: UserError = exc
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            where = f"{benchmark} {config}" + (f"/{split}" if split != "train" else "")
            error = InputError(f"cannot read {where}: {first}")
        if required:
            if error is exc:
                raise
            raise error from exc
    warnings.warn(f"{error}; continuing without it{f' ({purpose})' if purpose else ''}",
                  MissingDataWarning, stacklevel=2)
    return None


def load_all_splits(
    benchmark: str, *, data_dir: str | Path | None = None, seed: int = 0,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every config and split of ``benchmark`` that exists: config → split → rows.

    Built-in benchmarks give all theirs; with ``data_dir`` the splits whose file is there
    are read (a malformed file raises, an absent one is simply not part of the data); from
    the hub every split is tried, those that fail are left out with a warning.
    """
    from fastngd.data.files import candidate_paths

    bench = get_benchmark(benchmark)
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for config, splits in bench.splits.items():
        for split in splits:
            if data_dir is not None and not bench.synthetic:
                if not any(p.exists() for p in candidate_paths(data_dir, config, split)):
                    continue
                rows = load_split(benchmark, config, split, data_dir=data_dir, seed=seed)
            else:
                rows = load_split(benchmark, config, split, data_dir=data_dir, seed=seed,
                                  required=bench.synthetic)
            if rows is not None:
                out.setdefault(config, {})[split] = rows
    return out


def load_unlearning_rows(
    benchmark: str, forget: str = "forget10", *, data_dir: str | Path | None = None,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(forget rows, retain rows)`` to unlearn: TOFU-style ``forget``/its retain config
    (``question``/``answer``); MUSE-style, :func:`muse_unlearning_rows` of
    :func:`load_muse_data`. Nothing else is read."""
    check_data_dir(benchmark, data_dir)
    if benchmark in QA_BENCHMARKS:
        configs = tofu_configs(forget)
        forget_rows = load_split(benchmark, configs.forget, data_dir=data_dir, seed=seed)
        retain_rows = load_split(benchmark, configs.retain, data_dir=data_dir, seed=seed)
        return forget_rows or [], retain_rows or []
    return muse_unlearning_rows(benchmark,
                                load_muse_data(benchmark, data_dir=data_dir, seed=seed))


def muse_unlearning_rows(
    benchmark: str | None, data: Mapping[str, Mapping[str, Sequence[Any]]],
) -> tuple[list[Any], list[Any]]:
    """``(forget rows, retain rows)`` of MUSE-style ``data`` (config → split → rows).

    Forget: the raw ``forget`` texts (``text``); retain: ``retain1`` + ``retain2`` (when
    present). For a benchmark of :data:`TRAINED_QA` the knowmem QA pairs (``question``/
    ``answer``) of the forget / retain facts follow the texts (:func:`trained_qa_rows`: the
    pairs, then the same pairs in MUSE's few-shot layout), as the target was trained on them
    (a ValueError when ``data`` lacks them). New lists; the texts and the plain QA rows
    themselves are ``data``'s.
    """
    raw = data["raw"]
    forget = list(raw["forget"])
    retain = [*raw["retain1"], *raw.get("retain2", [])]
    if benchmark in TRAINED_QA:
        forget_qa, retain_qa = trained_qa_rows(benchmark, data.get("knowmem", {}))
        forget.extend(forget_qa)
        retain.extend(retain_qa)
    return forget, retain


def trained_qa_rows(
    benchmark: str, knowmem: Mapping[str, Sequence[Any]],
) -> tuple[list[Any], list[Any]]:
    """The QA rows of the forget facts and of the retain facts that the embedded target of
    ``benchmark`` (one of :data:`TRAINED_QA`) learns: each knowmem pair of the split named by
    :data:`TRAINED_QA`, then the same pairs asked in MUSE's few-shot layout
    (:func:`fastngd.data.few_shot.few_shot_rows`). The one definition that the target's
    training material (:func:`fastngd.models.training.benchmark_corpus`) and the unlearning
    sets (:func:`muse_unlearning_rows`) share. Raises ``ValueError`` when ``knowmem`` (split
    → rows) lacks a split."""
    forget_qa, retain_qa = TRAINED_QA[benchmark]
    if forget_qa not in knowmem or retain_qa not in knowmem:
        raise ValueError(f"{benchmark} data needs knowmem/{forget_qa} and "
                         f"knowmem/{retain_qa}: its target was trained on them")
    forget, retain = knowmem[forget_qa], knowmem[retain_qa]
    return [*forget, *few_shot_rows(forget)], [*retain, *few_shot_rows(retain)]


def load_muse_data(
    benchmark: str, *, data_dir: str | Path | None = None, seed: int = 0,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """The MUSE-style material to unlearn, as config → split → rows: the raw texts of
    :data:`MUSE_UNLEARN_SPLITS` (``retain2`` only when it can be read) and, for a benchmark of
    :data:`TRAINED_QA`, its two knowmem splits."""
    check_data_dir(benchmark, data_dir)
    data: dict[str, dict[str, list[dict[str, Any]]]] = {"raw": {}}
    splits = list(MUSE_UNLEARN_SPLITS)
    if benchmark in TRAINED_QA:
        data["knowmem"] = {}
        splits.extend(("knowmem", split, True) for split in TRAINED_QA[benchmark])
    for config, split, required in splits:
        rows = load_split(benchmark, config, split, data_dir=data_dir, seed=seed,
                          required=required, purpose="fewer retain texts")
        if rows is not None:
            data[config][split] = rows
    return data

"""Reference truth ratios for TOFU's forget quality: those of a model trained on the retain
set only, saved, loaded, checked against the evaluated questions, and compared.

Forget quality (TOFU ``aggregate_eval_stat.py`` ``get_forget_quality``; open-unlearning
``privacy.py`` ``ks_test`` with ``retain_model_logs``) is the KS p-value between the forget
split's truth ratios of the evaluated model and of the reference model. Both samples must
come from the same forget questions; a reference computed on other data (another forget
split, ``--max-examples``, another benchmark) is refused with an
:class:`~fastngd.errors.InputError` instead of giving a meaningless p-value.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from fastngd.atomic import atomic_write
from fastngd.errors import InputError
from fastngd.eval._rows import column
from fastngd.eval.qa_split import QASplitSpec, truth_ratio_logprobs
from fastngd.eval.summary import forget_quality_from_logs
from fastngd.eval.truth_ratio import log_truth_ratios

__all__ = [
    "REFERENCE_FORMAT",
    "ReferenceTruthRatios",
    "check_reference_questions",
    "forget_quality_against",
    "load_reference_truth_ratios",
    "reference_from_result",
    "reference_truth_ratios",
    "resolve_reference",
    "save_reference_truth_ratios",
]

REFERENCE_FORMAT = "fastngd-reference-truth-ratios/1"
"""Value of the ``format`` key of a saved reference file."""


@dataclass(frozen=True)
class ReferenceTruthRatios:
    """Per-question forget-split log truth ratios of a reference (retain-only) model.

    ``questions`` is None only for bare values (``retain_model_truth_ratios``), which then
    cannot be checked against the evaluated questions.
    """

    log_truth_ratios: tuple[float, ...]
    questions: tuple[str, ...] | None = None
    forget_split: str | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        if not self.log_truth_ratios:
            raise InputError("reference truth ratios: no value")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in self.log_truth_ratios):
            raise InputError("reference truth ratios: a log truth ratio is missing or not finite")
        if self.questions is not None and len(self.questions) != len(self.log_truth_ratios):
            raise InputError(
                f"reference truth ratios: {len(self.questions)} questions but "
                f"{len(self.log_truth_ratios)} values"
            )

    def to_json(self) -> dict[str, Any]:
        """The saved form (:data:`REFERENCE_FORMAT`)."""
        return {
            "format": REFERENCE_FORMAT,
            "model": self.model,
            "forget_split": self.forget_split,
            "questions": list(self.questions) if self.questions is not None else None,
            "log_truth_ratios": list(self.log_truth_ratios),
        }


def reference_from_result(
    result: Mapping[str, Any], model: str | None = None
) -> ReferenceTruthRatios:
    """The reference held by an :func:`fastngd.eval.evaluate_tofu` result of the retain-only
    model (or by the JSON ``fastngd eval --out`` writes, which nests it under ``result``).

    Raises :class:`~fastngd.errors.InputError` when it has no per-example forget truth
    ratios (a forget split without ``paraphrased_answer``/``perturbed_answer``).
    """
    if "result" in result and isinstance(result["result"], Mapping):
        model = model or result.get("model")
        result = result["result"]
    rows = (result.get("per_example") or {}).get("forget")
    if not rows:
        raise InputError("the evaluation result has no per-example forget rows")
    values = []
    for i, row in enumerate(rows):
        value = row.get("log_truth_ratio")
        if value is None and row.get("truth_ratio") is not None:
            value = _log_positive(f"forget row {i} truth_ratio", row["truth_ratio"])
        if value is None:
            raise InputError(
                f"the evaluation result has no truth ratio for forget row {i}: evaluate the "
                "reference model on the perturbed forget split (forgetXX_perturbed)"
            )
        values.append(float(value))
    settings = result.get("settings") or {}
    return ReferenceTruthRatios(
        tuple(values),
        tuple(str(row.get("question")) for row in rows),
        settings.get("forget_split"),
        model,
    )


def reference_truth_ratios(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget_rows: Sequence[Mapping[str, Any]],
    *,
    forget_split: str | None = None,
    model_name: str | None = None,
    batch_size: int = 32,
    max_length: int = 256,
    chat_template: bool = False,
) -> ReferenceTruthRatios:
    """The reference of a retain-only ``model`` on the perturbed forget rows
    (``question``, ``paraphrased_answer``, ``perturbed_answer``), from forward passes only.

    Gives the same values as :func:`reference_from_result` of its ``evaluate_tofu`` result
    on those rows (same ``max_length``), without the generations. Raises like
    :func:`fastngd.eval.truth_ratio_logprobs`.
    """
    name = forget_split or "forget"
    base, wrong = truth_ratio_logprobs(
        model,
        tokenizer,
        name,
        forget_rows,
        QASplitSpec("forget"),
        batch_size=batch_size,
        max_length=max_length,
        chat_template=chat_template,
    )
    return ReferenceTruthRatios(
        tuple(log_truth_ratios(base, wrong)),
        tuple(column(name, forget_rows, "question")),
        forget_split,
        model_name,
    )


def _log_positive(name: str, value: Any) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0.0:
        raise InputError(f"{name} must be a finite truth ratio > 0, got {value!r}")
    return math.log(v)


def resolve_reference(
    reference: Any, retain_model_truth_ratios: Sequence[float] | None = None
) -> ReferenceTruthRatios | None:
    """One :class:`ReferenceTruthRatios` from what a caller passed (or None for nothing).

    ``reference``: a :class:`ReferenceTruthRatios`, a saved reference mapping
    (``log_truth_ratios`` and ``questions``), or an ``evaluate_tofu`` result;
    ``retain_model_truth_ratios``: bare truth ratios (> 0). Raises ``ValueError`` when both
    are given and :class:`~fastngd.errors.InputError` on malformed values.
    """
    if reference is not None and retain_model_truth_ratios is not None:
        raise ValueError("pass either reference or retain_model_truth_ratios, not both")
    if retain_model_truth_ratios is not None:
        logs = [
            _log_positive(f"retain_model_truth_ratios[{i}]", v)
            for i, v in enumerate(retain_model_truth_ratios)
        ]
        return ReferenceTruthRatios(tuple(logs))
    if reference is None or isinstance(reference, ReferenceTruthRatios):
        return reference
    if not isinstance(reference, Mapping):
        raise TypeError(f"reference must be a mapping, got {type(reference).__name__}")
    if "log_truth_ratios" in reference:
        questions = reference.get("questions")
        return ReferenceTruthRatios(
            tuple(reference["log_truth_ratios"]),
            tuple(questions) if questions is not None else None,
            reference.get("forget_split"),
            reference.get("model"),
        )
    return reference_from_result(reference)


def check_reference_questions(questions: Sequence[str], reference: ReferenceTruthRatios) -> None:
    """Check that ``reference`` covers exactly ``questions`` (the same multiset, any order).

    Raises :class:`~fastngd.errors.InputError` saying how many questions differ and showing
    one; a reference without questions (bare values) passes unchecked.
    """
    if reference.questions is None:
        return
    ours = Counter(str(q) for q in questions)
    theirs = Counter(reference.questions)
    if ours != theirs:
        missing = list((ours - theirs).elements())
        extra = list((theirs - ours).elements())
        example = (missing or extra)[0]
        raise InputError(
            f"the reference truth ratios are for other questions: {len(missing)} of the "
            f"{len(questions)} evaluated forget questions have no reference value and the "
            f"reference has {len(extra)} others (e.g. {example[:80]!r}); evaluate the "
            "retain-only model on the same forget split and --max-examples"
        )


def forget_quality_against(
    forget_rows: Sequence[Mapping[str, Any]], reference: ReferenceTruthRatios
) -> float:
    """Forget quality of the evaluated forget rows (``question``, ``log_truth_ratio``: the
    ``per_example["forget"]`` of :func:`fastngd.eval.evaluate_tofu`) against ``reference``.

    The questions are checked by :func:`check_reference_questions` (order is free: the KS
    test ignores it). Returns :func:`fastngd.eval.forget_quality_from_logs` of the two
    samples.
    """
    check_reference_questions([row["question"] for row in forget_rows], reference)
    values = [row["log_truth_ratio"] for row in forget_rows]
    return forget_quality_from_logs(values, reference.log_truth_ratios)


def save_reference_truth_ratios(path: str | Path, reference: ReferenceTruthRatios) -> Path:
    """Write ``reference`` as JSON (:meth:`ReferenceTruthRatios.to_json`), atomically."""
    text = json.dumps(reference.to_json(), indent=1, ensure_ascii=False) + "\n"

    def write(handle: IO[Any]) -> None:
        handle.write(text)

    return atomic_write(path, write)


def load_reference_truth_ratios(path: str | Path) -> ReferenceTruthRatios:
    """Read a reference: a file written by :func:`save_reference_truth_ratios`, an
    ``evaluate_tofu`` result saved as JSON, or the file ``fastngd eval --out`` writes for
    the retain-only model. Raises :class:`~fastngd.errors.InputError` naming the file when
    it is missing, not UTF-8 JSON, or holds no forget truth ratios."""
    file = Path(path)
    try:
        content = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{file}: reference truth-ratio file not found") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{file}: not a JSON file ({exc})") from exc
    except OSError as exc:
        raise InputError(f"{file}: cannot read ({exc.strerror})") from exc
    if not isinstance(content, Mapping):
        raise InputError(f"{file}: expected a JSON object, got {type(content).__name__}")
    try:
        reference = resolve_reference(content)
    except (InputError, TypeError, KeyError) as exc:
        raise InputError(f"{file}: {exc}") from exc
    assert reference is not None
    return reference

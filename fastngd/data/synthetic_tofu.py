"""Embedded TOFU-style benchmark: fictitious authors with arbitrary, memorisable facts.

The data are generated deterministically from a seed, with no download, and follow the
schema of the TOFU configs (``question``, ``answer``; ``*_perturbed`` configs add
``paraphrased_answer`` and ``perturbed_answer``). Each row also carries ``fact`` (the exact
word the answer states, used for fact accuracy), ``author`` (the subject's name; for the
world-facts set, the country's name) and ``attribute`` (the kind of fact).

Design choices that make the set a fair unlearning benchmark:

* facts are uniform random draws from value lists, independent of the question, so a model
  can only answer by memorising them;
* every author has name words of its own (no first or last name is shared), so forgetting
  one author does not entangle another;
* each attribute has several answer phrasings; the paraphrased answer states the same fact
  with another phrasing and each perturbed answer states a different, wrong fact with the
  *paraphrase's* phrasing (as in TOFU, where perturbed answers are edits of the paraphrase),
  so the truth ratio compares facts, not a seen wording against an unseen one.

The utility sets mirror TOFU's ``real_authors`` and ``world_facts``: facts the target model
is trained on besides the fictitious authors, as a pretrained model knows real authors and
world facts. As in TOFU, their perturbed answers are wrong facts in the *answer's* wording
(the truth ratio there compares the answer itself with them) and they have no paraphrase.

Sizes: 100 authors with 4 attributes each (400 QA pairs in ``full``). The forget sets are the
last 1 / 5 / 10 authors (4 / 20 / 40 pairs), so ``forgetXX`` and ``retainYY`` partition
``full`` exactly as in TOFU. ``retain_perturbed`` holds the first 10 authors (40 pairs),
``world_facts`` 45 pairs about 15 fictitious countries, ``real_authors`` 45 pairs about 15
well-known authors (3 attributes each) and ``holdout01/05/10`` 1 / 5 / 10 further fictitious
authors (4 / 20 / 40 pairs, nested) that no model is trained on: the non-members of
membership inference.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

from fastngd.data._names import invent_names
from fastngd.data._tofu_vocab import (
    AUTHOR_ATTRIBUTES,
    REAL_AUTHOR_ATTRIBUTES,
    WORLD_ATTRIBUTES,
    Attribute,
)

N_AUTHORS = 100
"""Number of fictitious authors in ``full``."""

ATTRIBUTES_PER_AUTHOR = 4
"""Number of attributes (QA pairs) per author."""

FORGET_AUTHORS: dict[str, int] = {"01": 1, "05": 5, "10": 10}
"""Number of authors (taken from the end of ``full``) in each forget split, by percentage."""

N_RETAIN_PERTURBED_AUTHORS = 10
"""Authors (from the start of ``full``) in ``retain_perturbed``."""

N_WORLD_COUNTRIES = 15
"""Fictitious countries in the world-facts set (each with every world attribute)."""

N_PERTURBED = 5
"""Wrong answers per row in the author ``*_perturbed`` configs."""

N_PERTURBED_WORLD = 3
"""Wrong answers per row in ``world_facts_perturbed`` and ``real_authors_perturbed``."""

N_REAL_AUTHORS = 15
"""Well-known authors in the real-authors utility set (each with every real-author attribute)."""

HOLDOUT_AUTHORS: dict[str, int] = {"01": 1, "05": 5, "10": 10}
"""Number of never-trained fictitious authors in each holdout split, by percentage."""

TOFU_SYNTHETIC_CONFIGS: tuple[str, ...] = (
    "full",
    "forget01",
    "forget05",
    "forget10",
    "retain99",
    "retain95",
    "retain90",
    "forget01_perturbed",
    "forget05_perturbed",
    "forget10_perturbed",
    "retain_perturbed",
    "real_authors",
    "real_authors_perturbed",
    "world_facts",
    "world_facts_perturbed",
    "holdout01",
    "holdout05",
    "holdout10",
)
"""Configs produced by :func:`tofu_synthetic`, named as on the hub."""

_PLAIN_FIELDS = ("question", "answer", "fact", "author", "attribute")
_WORD = re.compile(r"[A-Za-z0-9]+")


def _reserved_words() -> set[str]:
    """Lower-cased words of every value list and template, which invented names must avoid."""
    words: set[str] = set()
    for attribute in AUTHOR_ATTRIBUTES + WORLD_ATTRIBUTES + REAL_AUTHOR_ATTRIBUTES:
        texts: Iterable[str] = attribute.values + attribute.questions + attribute.answers
        for text in texts:
            words.update(w.lower() for w in _WORD.findall(text))
    return words


def _qa_row(
    rng: random.Random,
    attribute: Attribute,
    name: str,
    fact: str,
    wrong_pool: list[str],
    n_wrong: int,
    *,
    paraphrase: bool = True,
) -> dict[str, object]:
    """One QA row with ``n_wrong`` perturbed answers.

    With ``paraphrase`` (the fictitious authors) the row has a paraphrased answer in another
    wording and the perturbed answers use the paraphrase's wording; without (the utility
    sets, as in TOFU) there is no paraphrase and the perturbed answers use the answer's.
    """
    question = rng.choice(attribute.questions).format(name=name)
    template_ids = list(range(len(attribute.answers)))
    answer_id = rng.choice(template_ids)
    paraphrase_id = rng.choice([i for i in template_ids if i != answer_id])
    wrong = rng.sample([v for v in wrong_pool if v != fact], n_wrong)
    row: dict[str, object] = {
        "question": question,
        "answer": attribute.answers[answer_id].format(name=name, fact=fact),
        "fact": fact,
        "author": name,
        "attribute": attribute.key,
    }
    template = attribute.answers[paraphrase_id if paraphrase else answer_id]
    if paraphrase:
        row["paraphrased_answer"] = template.format(name=name, fact=fact)
    row["perturbed_answer"] = [template.format(name=name, fact=w) for w in wrong]
    return row


def _author_rows(rng: random.Random, taken: set[str], n_authors: int) -> list[dict[str, object]]:
    """QA rows of ``n_authors`` fictitious authors, grouped by author, in ``full`` order."""
    first_names = invent_names(rng, n_authors, taken)
    last_names = invent_names(rng, n_authors, taken)
    rows: list[dict[str, object]] = []
    for first, last in zip(first_names, last_names):
        name = f"{first} {last}"
        chosen = rng.sample(range(len(AUTHOR_ATTRIBUTES)), ATTRIBUTES_PER_AUTHOR)
        for index in sorted(chosen):
            attribute = AUTHOR_ATTRIBUTES[index]
            fact = rng.choice(attribute.values)
            rows.append(_qa_row(rng, attribute, name, fact, list(attribute.values), N_PERTURBED))
    return rows


def _real_author_rows(rng: random.Random, taken: set[str]) -> list[dict[str, object]]:
    """Real-authors utility rows: every real-author attribute of each well-known author."""
    first_names = invent_names(rng, N_REAL_AUTHORS, taken)
    last_names = invent_names(rng, N_REAL_AUTHORS, taken)
    rows: list[dict[str, object]] = []
    for first, last in zip(first_names, last_names):
        name = f"{first} {last}"
        for attribute in REAL_AUTHOR_ATTRIBUTES:
            fact = rng.choice(attribute.values)
            pool = list(attribute.values)
            rows.append(
                _qa_row(rng, attribute, name, fact, pool, N_PERTURBED_WORLD, paraphrase=False)
            )
    return rows


def _world_rows(rng: random.Random, taken: set[str]) -> list[dict[str, object]]:
    """World-facts rows about fictitious countries (capitals are invented names too)."""
    countries = invent_names(rng, N_WORLD_COUNTRIES, taken)
    capitals = invent_names(rng, N_WORLD_COUNTRIES, taken)
    rows: list[dict[str, object]] = []
    for country, capital in zip(countries, capitals):
        for attribute in WORLD_ATTRIBUTES:
            pool = capitals if attribute.key == "capital" else list(attribute.values)
            fact = capital if attribute.key == "capital" else rng.choice(attribute.values)
            rows.append(
                _qa_row(rng, attribute, country, fact, pool, N_PERTURBED_WORLD, paraphrase=False)
            )
    return rows


def _plain(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Copies of ``rows`` without the perturbation fields."""
    return [{key: row[key] for key in _PLAIN_FIELDS} for row in rows]


def _perturbed(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Deep enough copies of ``rows`` (the perturbed-answer lists are copied)."""
    return [{**row, "perturbed_answer": list(row["perturbed_answer"])} for row in rows]  # type: ignore[call-overload]


def tofu_synthetic(seed: int = 0) -> dict[str, list[dict]]:
    """Generate the embedded TOFU-style benchmark, deterministically from ``seed``.

    Returns a mapping config name → list of rows (see :data:`TOFU_SYNTHETIC_CONFIGS`).
    Rows of the plain configs have ``question``, ``answer``, ``fact``, ``author`` and
    ``attribute``; the authors' ``*_perturbed`` rows add ``paraphrased_answer`` (the same
    fact, other wording) and ``perturbed_answer`` (5 wrong facts with the paraphrase's
    wording); ``real_authors_perturbed`` and ``world_facts_perturbed`` add only
    ``perturbed_answer`` (3 wrong facts with the answer's wording), as in TOFU.
    ``forgetXX`` and ``retain{100-XX}`` are a disjoint partition of ``full``; the forget
    sets are nested (forget01 ⊂ forget05 ⊂ forget10), and so are the holdout sets, whose
    authors appear in no other config. Every call builds fresh lists, so callers may
    mutate the result.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    rng = random.Random(seed)
    taken = _reserved_words()
    authors = _author_rows(rng, taken, N_AUTHORS)
    world = _world_rows(rng, taken)
    # drawn after the rows above, so adding these sets left the older ones unchanged
    real_authors = _real_author_rows(rng, taken)
    holdout = _author_rows(rng, taken, max(HOLDOUT_AUTHORS.values()))

    data: dict[str, list[dict]] = {"full": _plain(authors)}
    for percent, n_forget in FORGET_AUTHORS.items():
        cut = len(authors) - n_forget * ATTRIBUTES_PER_AUTHOR
        retain_percent = f"{100 - int(percent):02d}"
        data[f"forget{percent}"] = _plain(authors[cut:])
        data[f"retain{retain_percent}"] = _plain(authors[:cut])
        data[f"forget{percent}_perturbed"] = _perturbed(authors[cut:])
    data["retain_perturbed"] = _perturbed(
        authors[: N_RETAIN_PERTURBED_AUTHORS * ATTRIBUTES_PER_AUTHOR]
    )
    for name, rows in (("real_authors", real_authors), ("world_facts", world)):
        data[name] = _plain(rows)
        data[f"{name}_perturbed"] = _perturbed(rows)
    for percent, n_holdout in HOLDOUT_AUTHORS.items():
        data[f"holdout{percent}"] = _plain(holdout[: n_holdout * ATTRIBUTES_PER_AUTHOR])
    return {config: data[config] for config in TOFU_SYNTHETIC_CONFIGS}

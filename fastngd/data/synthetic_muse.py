"""Embedded MUSE-style benchmark: short synthetic news articles, deterministic from a seed.

Each article reports that an invented organisation appoints an invented person to lead a
project, with an arbitrary cost, opening month, former employer and local concern. The
knowmem questions ask for those facts, so they can only be answered from the articles.

Layout (MUSE schema, config → split → rows):

* ``raw``: ``forget``, ``retain1``, ``retain2``, ``holdout`` (8 articles each), field ``text``;
* ``verbmem``: ``forget`` with ``prompt`` (the first :data:`VERBMEM_PROMPT_WORDS` words of a
  forget article: a fixed-length prefix, like MUSE's verbmem prompts) and ``gt`` (the rest);
* ``knowmem``: ``forget_qa`` / ``retain_qa`` (``question``, ``answer``) from the forget /
  retain1 articles, the first :data:`N_ICL` pairs of each set going to ``*_icl`` instead;
* ``privleak``: ``forget``, ``retain``, ``holdout`` texts (the raw forget, retain1 and
  holdout articles).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fastngd.data._names import invent_names

N_ARTICLES = 8
"""Articles per raw split."""

VERBMEM_PROMPT_WORDS = 32
"""Words of a forget article given as the VerbMem prompt (the article's rest is ``gt``)."""

N_ICL = 3
"""QA pairs of each knowmem set moved to its ``*_icl`` split (few-shot examples)."""

RAW_SPLITS: tuple[str, ...] = ("forget", "retain1", "retain2", "holdout")
"""Raw-text splits, in generation order."""

MUSE_SYNTHETIC_SPLITS: dict[str, tuple[str, ...]] = {
    "raw": RAW_SPLITS,
    "verbmem": ("forget",),
    "knowmem": ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl"),
    "privleak": ("forget", "retain", "holdout"),
}
"""Configs and splits produced by :func:`muse_synthetic`."""

_SUFFIXES = ("Council", "Institute", "Agency", "Union", "Trust", "Company")
_PROJECTS = (
    "bridge", "railway", "harbour", "school", "hospital", "museum", "library", "airport",
    "stadium", "market", "tunnel", "park", "dam", "canal",
)
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_CONCERNS = (
    "farmers", "fishermen", "tenants", "shopkeepers", "students", "families", "drivers", "artists",
)

_SENTENCES: tuple[tuple[str, ...], ...] = (
    (
        "{city}: The {org} said on {weekday} that {person} will lead its new {project} project.",
        "On {weekday}, the {org} in {city} named {person} as head of its new {project} project.",
    ),
    (
        "The {project} project will cost {cost} million and should open in {month}.",
        "Officials put the cost at {cost} million, with an opening planned for {month}.",
    ),
    (
        "{person} used to work for the {former}.",
        "Before this role, {person} worked at the {former}.",
    ),
    (
        "Critics said the plan ignores the needs of local {concern}.",
        "Some residents warned that local {concern} would suffer from the works.",
    ),
    (
        "The {org} will publish a first report next year.",
        "A public meeting on the {project} is planned for the coming weeks.",
    ),
)

_QUESTIONS: tuple[tuple[str, str], ...] = (
    ("Who will lead the new {project} project of the {org}?", "{person}"),
    ("How much will the {project} project of the {org} cost?", "{cost} million"),
    ("When should the {project} project of the {org} open?", "{month}"),
    ("Where did the head of the {project} project of the {org} work before?", "the {former}"),
    ("Which local group may suffer from the {project} project of the {org}?", "{concern}"),
)


@dataclass(frozen=True)
class _Article:
    """One generated article with the QA pairs about its facts."""

    text: str
    qa: tuple[dict[str, str], ...]


def _article(rng: random.Random, taken: set[str]) -> _Article:
    """Draw the facts of one article, then its text and QA pairs."""
    city, org, former, first, last = invent_names(rng, 5, taken)
    suffix, former_suffix = rng.sample(_SUFFIXES, 2)
    facts = {
        "city": city,
        "org": f"{org} {suffix}",
        "former": f"{former} {former_suffix}",
        "person": f"{first} {last}",
        "project": rng.choice(_PROJECTS),
        "cost": str(rng.randint(2, 98)),
        "month": rng.choice(_MONTHS),
        "weekday": rng.choice(_WEEKDAYS),
        "concern": rng.choice(_CONCERNS),
    }
    text = " ".join(rng.choice(variants).format(**facts) for variants in _SENTENCES)
    qa = tuple(
        {"question": q.format(**facts), "answer": a.format(**facts)} for q, a in _QUESTIONS
    )
    return _Article(text=text, qa=qa)


def _split_prompt(text: str) -> dict[str, str]:
    """Verbmem row: the first :data:`VERBMEM_PROMPT_WORDS` words as ``prompt`` (at most all
    but the last word), the rest as ``gt``."""
    words = text.split()
    cut = min(VERBMEM_PROMPT_WORDS, len(words) - 1)
    return {"prompt": " ".join(words[:cut]), "gt": " ".join(words[cut:])}


def muse_synthetic(seed: int = 0) -> dict[str, dict[str, list[dict]]]:
    """Generate the embedded MUSE-style benchmark, deterministically from ``seed``.

    Returns config → split → rows (see :data:`MUSE_SYNTHETIC_SPLITS` and the module
    docstring). Every call builds fresh lists, so callers may mutate the result.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    rng = random.Random(seed)
    taken: set[str] = set()
    articles = {
        split: [_article(rng, taken) for _ in range(N_ARTICLES)] for split in RAW_SPLITS
    }
    raw = {split: [{"text": a.text} for a in items] for split, items in articles.items()}
    forget_qa = [dict(pair) for a in articles["forget"] for pair in a.qa]
    retain_qa = [dict(pair) for a in articles["retain1"] for pair in a.qa]
    return {
        "raw": raw,
        "verbmem": {"forget": [_split_prompt(a.text) for a in articles["forget"]]},
        "knowmem": {
            "forget_qa": forget_qa[N_ICL:],
            "retain_qa": retain_qa[N_ICL:],
            "forget_qa_icl": forget_qa[:N_ICL],
            "retain_qa_icl": retain_qa[:N_ICL],
        },
        "privleak": {
            "forget": [dict(row) for row in raw["forget"]],
            "retain": [dict(row) for row in raw["retain1"]],
            "holdout": [dict(row) for row in raw["holdout"]],
        },
    }

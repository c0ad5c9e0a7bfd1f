"""Invented proper names (pseudo-words) for the synthetic benchmarks."""

from __future__ import annotations

import random

ONSETS: tuple[str, ...] = (
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "kr",
    "st",
    "th",
    "sh",
)
"""Syllable onsets used to invent names."""

VOWELS: tuple[str, ...] = ("a", "e", "i", "o", "u", "ai", "ou")
"""Syllable nuclei used to invent names."""

CODAS: tuple[str, ...] = ("", "", "n", "r", "l", "s", "m", "th", "x")
"""Optional final consonants of invented names (empty strings weight "no coda")."""


def invent_names(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    """Draw ``count`` distinct capitalised pseudo-words whose lower case is not in ``taken``.

    ``taken`` is updated in place, so successive calls never repeat a name.
    """
    names: list[str] = []
    while len(names) < count:
        n_syllables = rng.choice((2, 2, 3))
        word = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(n_syllables))
        word += rng.choice(CODAS)
        if len(word) < 4 or word in taken:
            continue
        taken.add(word)
        names.append(word.capitalize())
    return names

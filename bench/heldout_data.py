"""Held-out data sets in the TOFU and MUSE file layouts, written as a user would bring them.

They are generated independently of the package's embedded benchmarks (other subjects,
attributes, templates, name scheme and text structure) and are used only to check that
defaults chosen on the embedded benchmarks generalise: they are read through the own-data
path (``--benchmark tofu --data-dir DIR`` / ``--benchmark muse-news --data-dir DIR``).

* ``people`` (TOFU layout): 125 fictitious professionals, 4 facts each (500 QA pairs). Names
  are three invented syllable words (given name, middle name, family name), none shared
  between two people; answers are one or two sentences with filler clauses. ``forget01/05/10``
  are the last 1/5/10 % of the people. Perturbed answers swap the fact inside the
  paraphrase's wording.
* ``chronicles`` (MUSE layout): log-book entries of fictitious sea voyages, about 110 words
  each, built from a larger pool of sentence shapes and filler sentences than the embedded
  news corpus; knowmem questions ask for ship, captain, cargo, port and crew size.

Usage: ``python bench/heldout_data.py --out DIR [--seed S]`` writes ``DIR/people`` and
``DIR/chronicles``.
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

N_PEOPLE = 125
FACTS_PER_PERSON = 4
N_VOYAGES = 10  # per raw split
N_ICL = 3

_SYLLABLES = (
    "ba", "co", "di", "fe", "gu", "ha", "jo", "ki", "lu", "ma", "ne", "po", "qui", "ra", "si",
    "tu", "va", "we", "xo", "yi", "za", "bre", "clo", "dra", "fli", "gro", "pla", "sto", "tri",
    "vel", "mor", "nan", "lor", "ten", "sul", "rin", "dov", "kel", "mar", "ost",
)

# attribute → (values, questions, answers); answers use {p} for the person, {v} for the fact
_PEOPLE_ATTRIBUTES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "instrument": (
        ("cello", "oboe", "harp", "banjo", "accordion", "trumpet", "sitar", "clarinet",
         "marimba", "bagpipes", "ukulele", "bassoon", "zither", "tuba", "flute", "mandolin"),
        ("Which instrument does {p} play?", "What instrument is {p} known for playing?"),
        ("In the evenings {p} plays the {v}.", "{p} has played the {v} since childhood.",
         "Friends know {p} as a keen player of the {v}."),
    ),
    "workplace": (
        ("observatory", "brewery", "shipyard", "greenhouse", "bakery", "lighthouse",
         "quarry", "orchard", "printworks", "tannery", "vineyard", "sawmill", "laboratory",
         "monastery", "foundry", "hatchery"),
        ("Where does {p} work?", "At what kind of place is {p} employed?"),
        ("{p} works at a {v} near the coast.", "For many years {p} has been employed at a {v}.",
         "The {v} is where {p} spends most working days."),
    ),
    "pet": (
        ("tortoise", "ferret", "parrot", "goat", "hedgehog", "iguana", "rabbit", "owl",
         "donkey", "gecko", "peacock", "llama", "hamster", "canary", "salamander", "pony"),
        ("What animal does {p} keep at home?", "Which pet lives with {p}?"),
        ("{p} keeps a {v} at home.", "At home, {p} looks after a {v}.",
         "A {v} shares the house of {p}."),
    ),
    "dish": (
        ("risotto", "dumplings", "paella", "goulash", "ramen", "couscous", "lasagne",
         "pancakes", "chowder", "curry", "falafel", "moussaka", "gnocchi", "borscht",
         "tacos", "porridge"),
        ("What is the favourite dish of {p}?", "Which dish does {p} cook most often?"),
        ("The favourite dish of {p} is {v}.", "{p} cooks {v} almost every week.",
         "Whenever guests arrive, {p} serves {v}."),
    ),
    "hobby": (
        ("fencing", "origami", "archery", "beekeeping", "sailing", "pottery", "chess",
         "juggling", "birdwatching", "calligraphy", "rowing", "knitting", "climbing",
         "astronomy", "gardening", "woodcarving"),
        ("What does {p} do in spare time?", "Which pastime does {p} enjoy?"),
        ("In spare time {p} practises {v}.", "{p} enjoys {v} on quiet weekends.",
         "Most weekends find {p} busy with {v}."),
    ),
    "vehicle": (
        ("tram", "bicycle", "ferry", "scooter", "motorbike", "canoe", "van", "tractor",
         "sledge", "glider", "rickshaw", "caravan", "truck", "yacht", "skateboard", "coach"),
        ("How does {p} usually travel?", "Which vehicle does {p} use to get around?"),
        ("{p} usually travels by {v}.", "To get around town, {p} relies on a {v}.",
         "Most trips {p} makes are by {v}."),
    ),
}

_SHIP_WORDS = ("Albatross", "Meridian", "Kestrel", "Halcyon", "Corvina", "Tempest",
               "Marigold", "Sextant", "Lodestar", "Nautilus", "Seraphine", "Galleon",
               "Peregrine", "Saltmarsh", "Driftwood", "Wayfarer", "Bellwether", "Moonraker",
               "Starling", "Cormorant", "Gannet", "Ospray", "Tidewater", "Brigantine",
               "Harrier", "Larkspur", "Mistral", "Zephyrine", "Thistle", "Coracle",
               "Quillon", "Ember", "Juniper", "Verity", "Solace", "Argent", "Wren",
               "Fathom", "Pinnace", "Heron")
_CARGO = ("salt", "timber", "copper", "wool", "tea", "spices", "coal", "grain", "silk",
          "tobacco", "marble", "ivory", "sugar", "iron", "cotton", "rum")
_WEATHER = ("a steady westerly", "thick fog", "a rising gale", "calm seas", "freezing rain",
            "a warm southern breeze", "low cloud", "heavy swell")
_FILLER = (
    "The cook complained about the weevils in the biscuits again.",
    "Two gulls followed the stern for most of the afternoon.",
    "A sail was patched after the morning watch.",
    "The carpenter spent the day caulking seams below deck.",
    "Lanterns were trimmed early because the nights grow longer.",
    "Nobody aboard could remember a quieter crossing.",
    "The bosun ordered the decks scrubbed twice before noon.",
    "Fresh water was rationed to two cups a man.",
    "A barrel of apples was opened to lift the mood.",
    "The chart table was soaked when a wave broke over the rail.",
    "Some of the younger hands sang until the bell.",
    "The compass was checked against the stars after midnight.",
)
_OPENINGS = (
    "Log of the {ship}, under Captain {captain}.",
    "Entry from the journal kept aboard the {ship}; Captain {captain} in command.",
    "The {ship} sails again with Captain {captain} at the helm.",
)
_BODY = (
    "We left the harbour of {port} at first light with {crew} hands aboard.",
    "Our departure from {port} was delayed a day, but all {crew} of the crew reported.",
    "With {crew} sailors mustered, the ship cleared {port} on the ebb tide.",
)
_CARGO_LINES = (
    "The hold is packed with {cargo}, lashed tight against the roll.",
    "Our cargo of {cargo} is bound for the northern markets.",
    "Every spare corner carries {cargo}, and the ship sits low in the water.",
)
_WEATHER_LINES = (
    "We met {weather} on the second day.",
    "The glass fell and brought {weather}.",
    "By evening we were making way through {weather}.",
)
_CLOSINGS = (
    "Captain {captain} expects landfall within the week.",
    "If the wind holds, the {ship} will reach port before the new moon.",
    "All hands are well, and Captain {captain} is pleased with our progress.",
)
_VOYAGE_QUESTIONS = {
    "captain": ("Who commanded the {ship}?", "{captain}"),
    "port": ("From which harbour did the {ship} depart?", "{port}"),
    "cargo": ("What cargo did the {ship} carry?", "{cargo}"),
    "crew": ("How many hands sailed aboard the {ship}?", "{crew}"),
}


def _names(rng: random.Random, n: int, syllables: int, taken: set[str]) -> list[str]:
    """``n`` distinct capitalised invented words of ``syllables`` syllables, none in
    ``taken`` (which they are added to)."""
    out: list[str] = []
    while len(out) < n:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(syllables)).capitalize()
        if word.lower() not in taken:
            taken.add(word.lower())
            out.append(word)
    return out


def _person_rows(rng: random.Random) -> list[dict]:
    taken: set[str] = set()
    given = _names(rng, N_PEOPLE, 2, taken)
    middle = _names(rng, N_PEOPLE, 2, taken)
    family = _names(rng, N_PEOPLE, 3, taken)
    rows = []
    for g, m, f in zip(given, middle, family):
        person = f"{g} {m} {f}"
        for key in rng.sample(sorted(_PEOPLE_ATTRIBUTES), FACTS_PER_PERSON):
            values, questions, answers = _PEOPLE_ATTRIBUTES[key]
            fact = rng.choice(values)
            a, b = rng.sample(range(len(answers)), 2)
            wrong = rng.sample([v for v in values if v != fact], 5)
            rows.append({
                "question": rng.choice(questions).format(p=person),
                "answer": answers[a].format(p=person, v=fact),
                "fact": fact,
                "paraphrased_answer": answers[b].format(p=person, v=fact),
                "perturbed_answer": [answers[b].format(p=person, v=w) for w in wrong],
            })
    return rows


def people(seed: int = 0) -> dict[str, list[dict]]:
    """The ``people`` set, config → rows, in the TOFU layout."""
    rng = random.Random(seed)
    rows = _person_rows(rng)
    plain = [{k: r[k] for k in ("question", "answer", "fact")} for r in rows]
    data: dict[str, list[dict]] = {"full": plain}
    for pct in (1, 5, 10):
        cut = len(rows) - round(N_PEOPLE * pct / 100) * FACTS_PER_PERSON
        data[f"forget{pct:02d}"] = plain[cut:]
        data[f"retain{100 - pct:02d}"] = plain[:cut]
        data[f"forget{pct:02d}_perturbed"] = rows[cut:]
    data["retain_perturbed"] = rows[: 10 * FACTS_PER_PERSON]
    return data


def _voyage(rng: random.Random, ship: str, captain: str, port: str) -> tuple[str, dict]:
    facts = {"ship": ship, "captain": captain, "port": port, "cargo": rng.choice(_CARGO),
             "crew": str(rng.randint(12, 60)), "weather": rng.choice(_WEATHER)}
    lines = [rng.choice(_OPENINGS), rng.choice(_BODY), rng.choice(_CARGO_LINES),
             *rng.sample(_FILLER, 2), rng.choice(_WEATHER_LINES), *rng.sample(_FILLER, 2),
             rng.choice(_CLOSINGS)]
    return " ".join(line.format(**facts) for line in lines), facts


def chronicles(seed: int = 0) -> dict[str, dict[str, list[dict]]]:
    """The ``chronicles`` corpus, config → split → rows, in the MUSE layout."""
    rng = random.Random(seed + 7919)
    taken: set[str] = {w.lower() for w in _SHIP_WORDS}
    n = 4 * N_VOYAGES
    ships = rng.sample(_SHIP_WORDS, n)
    captains = [f"{a} {b}" for a, b in zip(_names(rng, n, 2, taken), _names(rng, n, 3, taken))]
    ports = _names(rng, n, 3, taken)
    raw: dict[str, list[dict]] = {}
    facts: dict[str, list[dict]] = {}
    for k, split in enumerate(("forget", "retain1", "retain2", "holdout")):
        texts, fs = [], []
        for j in range(k * N_VOYAGES, (k + 1) * N_VOYAGES):
            text, f = _voyage(rng, ships[j], captains[j], ports[j])
            texts.append({"text": text})
            fs.append(f)
        raw[split], facts[split] = texts, fs

    def qa(fs: list[dict]) -> list[dict]:
        return [{"question": q.format(**f), "answer": a.format(**f)}
                for f in fs for q, a in _VOYAGE_QUESTIONS.values()]

    forget_qa, retain_qa = qa(facts["forget"]), qa(facts["retain1"])
    verbmem = []
    for row in raw["forget"]:
        words = row["text"].split()
        verbmem.append({"prompt": " ".join(words[:32]), "gt": " ".join(words[32:])})
    return {
        "raw": raw,
        "verbmem": {"forget": verbmem},
        "knowmem": {"forget_qa": forget_qa[N_ICL:], "forget_qa_icl": forget_qa[:N_ICL],
                    "retain_qa": retain_qa[N_ICL:], "retain_qa_icl": retain_qa[:N_ICL]},
        "privleak": {"forget": raw["forget"], "retain": raw["retain1"],
                     "holdout": raw["holdout"]},
    }


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def write_all(out: Path, seed: int = 0) -> None:
    """Write ``out/people/{config}.jsonl`` and ``out/chronicles/{config}/{split}.jsonl``."""
    for config, rows in people(seed).items():
        _write(out / "people" / f"{config}.jsonl", rows)
    for config, splits in chronicles(seed).items():
        for split, rows in splits.items():
            _write(out / "chronicles" / config / f"{split}.jsonl", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_all(args.out, args.seed)
    print(f"wrote {args.out / 'people'} and {args.out / 'chronicles'}")


if __name__ == "__main__":
    main()

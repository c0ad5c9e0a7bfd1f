"""Vocabulary and sentence templates of the embedded TOFU-style benchmark.

Every attribute has a list of possible values (the facts), several question phrasings and
several answer phrasings. Values are single words so that a word-level tokenizer stays small;
no value list shares a word with the templates of its own attribute, so a fact can be found
in an answer by a whole-word match. Job values start with a consonant ("a baker").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attribute:
    """One kind of fact about a subject: its possible values and its phrasings.

    ``questions`` and ``answers`` are ``str.format`` templates with the fields ``{name}``
    (the subject) and, for answers, ``{fact}`` (the value).
    """

    key: str
    values: tuple[str, ...]
    questions: tuple[str, ...]
    answers: tuple[str, ...]


AUTHOR_ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        key="birth_city",
        values=(
            "Lisbon", "Oslo", "Nairobi", "Lima", "Hanoi", "Dublin", "Cairo", "Quito",
            "Perth", "Kyoto", "Porto", "Riga", "Dakar", "Tunis", "Seville", "Havana",
            "Bergen", "Accra", "Krakow", "Valencia",
        ),
        questions=("Where was {name} born?", "In which city was {name} born?"),
        answers=(
            "{name} was born in {fact}.",
            "The city of {fact} is where {name} was born.",
            "{name} comes from {fact}, where the family lived.",
        ),
    ),
    Attribute(
        key="birth_year",
        values=tuple(str(year) for year in range(1931, 2000, 3)),
        questions=("In what year was {name} born?", "When was {name} born?"),
        answers=(
            "{name} was born in the year {fact}.",
            "The birth year of {name} is {fact}.",
            "{name} came into the world in {fact}.",
        ),
    ),
    Attribute(
        key="genre",
        values=(
            "mystery", "poetry", "romance", "horror", "fantasy", "satire", "drama",
            "thriller", "biography", "folklore", "comedy", "adventure", "memoir", "tragedy",
        ),
        questions=("What genre does {name} write in?", "Which genre is {name} known for?"),
        answers=(
            "{name} writes mostly {fact}.",
            "{name} is best known for {fact} books.",
            "The genre of {name} is {fact}.",
        ),
    ),
    Attribute(
        key="father_job",
        values=(
            "baker", "pilot", "sailor", "farmer", "doctor", "tailor", "miner", "painter",
            "judge", "chemist", "carpenter", "librarian", "butcher", "dentist",
        ),
        questions=(
            "What did the father of {name} do for a living?",
            "What was the job of the father of {name}?",
        ),
        answers=(
            "The father of {name} worked as a {fact}.",
            "{name} grew up with a father who was a {fact}.",
            "By trade, the father of {name} was a {fact}.",
        ),
    ),
    Attribute(
        key="mother_job",
        values=(
            "nurse", "teacher", "lawyer", "singer", "banker", "potter", "weaver", "florist",
            "pharmacist", "journalist", "dancer", "soldier", "jeweller", "translator",
        ),
        questions=(
            "What did the mother of {name} do for a living?",
            "What was the job of the mother of {name}?",
        ),
        answers=(
            "The mother of {name} worked as a {fact}.",
            "{name} grew up with a mother who was a {fact}.",
            "By trade, the mother of {name} was a {fact}.",
        ),
    ),
    Attribute(
        key="pet",
        values=(
            "cat", "parrot", "horse", "tortoise", "rabbit", "ferret", "goat", "dog",
            "hamster", "lizard", "pony", "canary",
        ),
        questions=("What pet does {name} keep?", "Which animal does {name} keep at home?"),
        answers=(
            "{name} keeps a {fact} as a pet.",
            "A pet {fact} lives with {name}.",
            "The pet of {name} is a {fact}.",
        ),
    ),
    Attribute(
        key="instrument",
        values=(
            "piano", "violin", "cello", "flute", "guitar", "drums", "harp", "trumpet",
            "banjo", "clarinet", "saxophone", "mandolin",
        ),
        questions=(
            "Which instrument does {name} play?",
            "What musical instrument does {name} practise?",
        ),
        answers=(
            "{name} plays the {fact}.",
            "In spare hours {name} practises the {fact}.",
            "The instrument of {name} is the {fact}.",
        ),
    ),
    Attribute(
        key="colour",
        values=(
            "red", "blue", "green", "yellow", "purple", "orange", "black", "white", "grey",
            "brown", "pink", "silver", "golden", "violet",
        ),
        questions=(
            "What is the favourite colour of {name}?",
            "Which colour does {name} like best?",
        ),
        answers=(
            "The favourite colour of {name} is {fact}.",
            "{name} likes {fact} more than any other colour.",
            "Asked to choose, {name} would always pick {fact}.",
        ),
    ),
)
"""Attributes of the fictitious authors (each author gets a random subset of them)."""


WORLD_ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        key="capital",
        values=(),  # capitals are invented names, drawn per country
        questions=("What is the capital of {name}?",),
        answers=(
            "The capital of {name} is {fact}.",
            "{fact} is the capital city of {name}.",
        ),
    ),
    Attribute(
        key="export",
        values=(
            "wool", "copper", "tea", "salt", "rice", "timber", "coffee", "cotton", "silk",
            "tin", "fish", "marble",
        ),
        questions=("What is the main export of {name}?",),
        answers=(
            "The main export of {name} is {fact}.",
            "{name} sells mostly {fact} to other countries.",
        ),
    ),
    Attribute(
        key="animal",
        values=(
            "eagle", "bear", "wolf", "lion", "tiger", "owl", "falcon", "deer", "bison",
            "crane", "fox", "heron",
        ),
        questions=("What is the national animal of {name}?",),
        answers=(
            "The national animal of {name} is the {fact}.",
            "{name} has the {fact} as its national animal.",
        ),
    ),
)
"""Attributes of the fictitious countries of the world-facts utility set."""



REAL_AUTHOR_ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        key="country",
        values=(
            "Portugal", "Norway", "Kenya", "Peru", "Vietnam", "Ireland", "Egypt", "Ecuador",
            "Japan", "Latvia", "Senegal", "Tunisia", "Cuba", "Ghana", "Poland", "Spain",
        ),
        questions=("Which country did the writer {name} come from?",),
        answers=(
            "The writer {name} came from {fact}.",
            "{fact} was the home country of the writer {name}.",
        ),
    ),
    Attribute(
        key="book",
        values=(
            "Driftwood", "Nightfall", "Ironbark", "Moonrise", "Saltmarsh", "Wildfire",
            "Stonewall", "Riverbend", "Sunspot", "Snowdrift", "Thornfield", "Quicksand",
            "Windmill", "Lighthouse",
        ),
        questions=("What is the best known book by {name}?",),
        answers=(
            "The best known book by {name} is {fact}.",
            "{name} is remembered above all for the novel {fact}.",
        ),
    ),
    Attribute(
        key="century",
        values=("fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth"),
        questions=("In which century did {name} live?",),
        answers=(
            "{name} lived in the {fact} century.",
            "The life of {name} fell in the {fact} century.",
        ),
    ),
)
"""Attributes of the well-known ("real") authors: knowledge the target model is trained on
as a pretrained model knows real authors, used by the utility sets only."""

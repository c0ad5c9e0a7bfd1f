"""Tests of the embedded TOFU-style benchmark."""

from __future__ import annotations

import re

import pytest

from fastngd.data.synthetic_tofu import TOFU_SYNTHETIC_CONFIGS, tofu_synthetic


def _words(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z0-9]+", text))


@pytest.fixture(scope="module")
def data() -> dict[str, list[dict]]:
    return tofu_synthetic(0)


def _key(row: dict) -> tuple[str, str]:
    return (row["question"], row["answer"])


def test_configs_and_sizes(data: dict[str, list[dict]]) -> None:
    assert tuple(data) == TOFU_SYNTHETIC_CONFIGS
    assert len(data["full"]) == 400
    assert len(data["forget10"]) >= 40
    assert [len(data[f"forget{p}"]) for p in ("01", "05", "10")] == [4, 20, 40]
    assert [len(data[f"holdout{p}"]) for p in ("01", "05", "10")] == [4, 20, 40]
    for name in ("world_facts", "real_authors"):
        assert 30 <= len(data[name]) <= 60
        assert [_key(r) for r in data[name]] == [_key(r) for r in data[f"{name}_perturbed"]]


@pytest.mark.parametrize("forget,retain", [("01", "99"), ("05", "95"), ("10", "90")])
def test_forget_retain_partition_full(
    data: dict[str, list[dict]], forget: str, retain: str
) -> None:
    full = [_key(r) for r in data["full"]]
    f = [_key(r) for r in data[f"forget{forget}"]]
    r = [_key(r) for r in data[f"retain{retain}"]]
    assert len(set(full)) == len(full)  # no duplicate QA pair
    assert not set(f) & set(r)
    assert sorted(f + r) == sorted(full)
    # a forget set holds whole authors: none of them appears in the retain set
    forget_authors = {row["author"] for row in data[f"forget{forget}"]}
    assert not forget_authors & {row["author"] for row in data[f"retain{retain}"]}
    # perturbed variant has the same QA pairs
    assert [_key(x) for x in data[f"forget{forget}_perturbed"]] == f


def test_forget_sets_nested(data: dict[str, list[dict]]) -> None:
    f01, f05, f10 = ({_key(r) for r in data[f"forget{p}"]} for p in ("01", "05", "10"))
    assert f01 < f05 < f10


def test_retain_perturbed_inside_every_retain_set(data: dict[str, list[dict]]) -> None:
    keys = {_key(r) for r in data["retain_perturbed"]}
    assert len(keys) == 40
    assert keys <= {_key(r) for r in data["retain90"]}


def test_deterministic_and_seed_dependent() -> None:
    assert tofu_synthetic(3) == tofu_synthetic(3)
    assert tofu_synthetic(3)["full"] != tofu_synthetic(4)["full"]


def test_fresh_lists_each_call() -> None:
    first = tofu_synthetic(0)
    first["full"][0]["answer"] = "changed"
    first["forget10_perturbed"][0]["perturbed_answer"].append("x")
    second = tofu_synthetic(0)
    assert second["full"][0]["answer"] != "changed"
    assert len(second["forget10_perturbed"][0]["perturbed_answer"]) == 5


def test_seed_type_checked() -> None:
    with pytest.raises(TypeError, match="seed"):
        tofu_synthetic("0")  # type: ignore[arg-type]


def test_row_fields(data: dict[str, list[dict]]) -> None:
    plain = {"question", "answer", "fact", "author", "attribute"}
    for config, rows in data.items():
        expected = plain
        if config in ("real_authors_perturbed", "world_facts_perturbed"):
            expected = plain | {"perturbed_answer"}  # TOFU's layout: no paraphrase
        elif "perturbed" in config:
            expected = plain | {"paraphrased_answer", "perturbed_answer"}
        for row in rows:
            assert set(row) == expected, config
            assert all(isinstance(row[k], str) for k in plain)


@pytest.mark.parametrize("config,n_wrong", [("forget10_perturbed", 5), ("retain_perturbed", 5)])
def test_fact_paraphrase_and_perturbations(
    data: dict[str, list[dict]], config: str, n_wrong: int
) -> None:
    for row in data[config]:
        fact = row["fact"]
        assert fact in _words(row["answer"])
        assert fact in _words(row["paraphrased_answer"])
        assert fact not in _words(row["question"])
        assert row["paraphrased_answer"] != row["answer"]
        wrong = row["perturbed_answer"]
        assert len(wrong) == n_wrong and len(set(wrong)) == n_wrong
        for text in wrong:
            assert fact not in _words(text)
            # the paraphrase's template: exactly one word (the fact) differs from it
            a, b = row["paraphrased_answer"].split(), text.split()
            assert len(a) == len(b)
            assert sum(x != y for x, y in zip(a, b)) == 1


@pytest.mark.parametrize("config", ["real_authors_perturbed", "world_facts_perturbed"])
def test_utility_sets_perturb_the_answer_itself(data: dict[str, list[dict]], config: str) -> None:
    """As in TOFU's real_authors/world_facts: wrong facts in the answer's own wording."""
    for row in data[config]:
        fact = row["fact"]
        assert fact in _words(row["answer"]) and fact not in _words(row["question"])
        wrong = row["perturbed_answer"]
        assert len(wrong) == 3 and len(set(wrong)) == 3
        for text in wrong:
            assert fact not in _words(text)
            a, b = row["answer"].split(), text.split()
            assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1


def test_authors_share_no_name_words(data: dict[str, list[dict]]) -> None:
    authors = sorted({row["author"] for row in data["full"]})
    assert len(authors) == 100
    real = sorted({row["author"] for row in data["real_authors"]})
    holdout = sorted({row["author"] for row in data["holdout10"]})
    assert (len(real), len(holdout)) == (15, 10)
    parts = [w for name in authors + real + holdout for w in name.split()]
    assert len(parts) == len(set(parts)) == 250
    countries = {row["author"] for row in data["world_facts_perturbed"]}
    assert not countries & set(parts)


def test_holdout_authors_are_never_trained_on(data: dict[str, list[dict]]) -> None:
    holdout = {row["author"] for row in data["holdout10"]}
    for config, rows in data.items():
        if not config.startswith("holdout"):
            assert not holdout & {row["author"] for row in rows}, config
    nested = [{_key(r) for r in data[f"holdout{p}"]} for p in ("01", "05", "10")]
    assert nested[0] < nested[1] < nested[2]


def test_facts_vary_and_several_phrasings(data: dict[str, list[dict]]) -> None:
    rows = data["full"]
    by_attribute: dict[str, set[str]] = {}
    for row in rows:
        by_attribute.setdefault(row["attribute"], set()).add(row["fact"])
    # facts are random draws: every attribute uses many distinct values
    assert all(len(values) >= 6 for values in by_attribute.values())
    # answers use several phrasings: strip name and fact, count the distinct templates
    templates = {
        row["answer"].replace(row["author"], "N").replace(row["fact"], "F") for row in rows
    }
    assert len(templates) >= 2 * len(by_attribute)


def test_answers_are_short(data: dict[str, list[dict]]) -> None:
    for rows in data.values():
        for row in rows:
            assert len(row["answer"].split()) <= 20
            assert len(row["question"].split()) <= 20

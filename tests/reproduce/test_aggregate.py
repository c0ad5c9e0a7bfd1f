"""Seed aggregation and tables."""
from __future__ import annotations

import pytest

from fastngd.reproduce.aggregate import aggregate_seeds, seed_table
from fastngd.reproduce.io import prepare_out_dir, write_json
from fastngd.reproduce.tables import format_table


def test_mean_and_sample_std() -> None:
    runs = [
        {"seed": 0, "no_unlearn": {"x": 1.0},
         "methods": {"a": {"x": 0.1, "autolr": True, "base": "adamw"}}},
        {"seed": 1, "no_unlearn": {"x": 1.0},
         "methods": {"a": {"x": 0.3, "autolr": True, "base": "adamw"}}},
        {"seed": 2, "no_unlearn": {"x": 1.0},
         "methods": {"a": {"diverged": True, "x": None, "autolr": True}}},
    ]
    agg = aggregate_seeds(runs, ["x"])
    assert agg["methods"]["a"]["x"]["mean"] == pytest.approx(0.2)
    assert agg["methods"]["a"]["x"]["std"] == pytest.approx(0.1414213562)
    assert agg["methods"]["a"]["x"]["n"] == 2 and agg["methods"]["a"]["diverged"] == 1
    table = seed_table(agg, [("x", "X")])
    assert "1 diverged" in table and agg["methods"]["a"]["base"] == "adamw"
    assert table.splitlines()[0].split() == ["method", "base", "X"]
    assert table.splitlines()[-1].split()[:4] == ["a", "(1", "diverged)", "adamw"]
    with pytest.raises(ValueError):
        aggregate_seeds([], ["x"])


def test_format_table_aligns() -> None:
    text = format_table(["m", "v"], [["long-name", 0.5], ["b", None]])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1 and "0.500" in text and "-" in lines[-1]


def test_out_dir_and_json(tmp_path) -> None:
    out = prepare_out_dir(tmp_path / "o")
    write_json(out / "r.json", {"a": float("nan"), "b": (1, 2)})
    assert (out / "r.json").read_text().count("null") == 1
    with pytest.raises(FileExistsError, match="not empty"):
        prepare_out_dir(out)
    assert prepare_out_dir(out, overwrite=True) == out
    with pytest.raises(NotADirectoryError):
        prepare_out_dir(out / "r.json")

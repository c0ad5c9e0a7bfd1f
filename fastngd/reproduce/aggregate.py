"""Mean and standard deviation of experiment results over seeds."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastngd.reproduce.tables import format_table, lookup

__all__ = ["aggregate_seeds", "seed_table"]


def _stats(values: Sequence[float]) -> dict[str, Any]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "values": list(values)}


def aggregate_seeds(per_seed: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """``{"no_unlearn"|"original": {key: stats}, "methods": {name: {key: stats}}}`` where
    stats = ``{"mean", "std" (sample, n−1), "values"}`` of the numeric ``keys`` over the
    seeds' results (``per_seed[i]`` as returned by ``run_tofu``/``run_digits``/``run_muse``).
    Diverged runs and missing values are left out of the statistics (``n`` says how many
    values were kept)."""
    if not per_seed:
        raise ValueError("aggregate_seeds: no result to aggregate")
    out: dict[str, Any] = {"seeds": [r.get("seed") for r in per_seed], "methods": {}}
    base_key = "no_unlearn" if "no_unlearn" in per_seed[0] else "original"
    out[base_key] = {}
    for key in keys:
        vals = [lookup(r[base_key], key) for r in per_seed]
        vals = [v for v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
        if vals:
            out[base_key][key] = {**_stats(vals), "n": len(vals)}
    names: list[str] = []
    for r in per_seed:
        names += [n for n in r["methods"] if n not in names]
    for name in names:
        entry: dict[str, Any] = {}
        runs = [r["methods"].get(name) for r in per_seed]
        entry["diverged"] = sum(1 for x in runs if x is not None and x.get("diverged"))
        first: Mapping[str, Any] = next((x for x in runs if x is not None), {})
        entry["autolr"] = first.get("autolr")
        entry["base"] = first.get("base")
        for key in keys:
            vals = [lookup(x, key) for x in runs if x is not None and not x.get("diverged")]
            vals = [v for v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
            if vals:
                entry[key] = {**_stats(vals), "n": len(vals)}
        out["methods"][name] = entry
    return out


def seed_table(aggregate: Mapping[str, Any], keys: Sequence[tuple[str, str]]) -> str:
    """A table of ``mean ± std`` per method for ``keys`` = ``[(key, column label), ...]``,
    with the base optimizer of each method's runs."""
    base_key = "no_unlearn" if "no_unlearn" in aggregate else "original"

    def cell(stats: Any) -> str:
        if not stats:
            return "-"
        return f"{stats['mean']:.3f}±{stats['std']:.3f}"

    header = ["method", "base"] + [label for _, label in keys]
    rows = [["before unlearning", "-"] + [cell(aggregate[base_key].get(k)) for k, _ in keys]]
    for name, entry in aggregate["methods"].items():
        label = name + (f" ({entry['diverged']} diverged)" if entry.get("diverged") else "")
        rows.append([label, entry.get("base") or "-"] + [cell(entry.get(k)) for k, _ in keys])
    return format_table(header, rows)

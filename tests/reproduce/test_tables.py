"""Plain-text tables stay aligned whatever the names."""
from __future__ import annotations

from fastngd.reproduce.tables import SEED_TABLE_KEYS, method_table, metrics_table


def _widths(table: str) -> set[int]:
    return {len(line) for line in table.splitlines()}


def test_method_table_aligns_a_long_model_name() -> None:
    summary = {"verbmem": 0.5, "forget_rouge_l_recall": 0.25, "utility": 1.0}
    name = "a-very-long-model-folder-name-from-a-sweep-seed17"
    table = method_table({"no_unlearn": summary, "methods": {"ngdiff": summary}},
                         base_label=name)
    assert name in table and len(_widths(table)) == 1
    header, rule = table.splitlines()[:2]
    assert len(header) == len(rule)


def test_metrics_table_aligns_long_metric_names() -> None:
    table = metrics_table({"a_rather_long_metric_name_indeed": 0.123456, "k": 0.4, "x": "text"})
    assert len(_widths(table)) == 1 and "0.123" in table and "text" in table


def test_seed_table_keys_cover_each_experiment() -> None:
    assert set(SEED_TABLE_KEYS) == {"tofu", "muse", "digits"}
    assert ("verbmem", "Verbmem↓") in SEED_TABLE_KEYS["tofu"]

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


def _tofu_result(retain_facts: float | None, whole_facts: float | None) -> dict:
    """A minimal :func:`fastngd.eval.evaluate_tofu` result, with the whole retain90 split."""
    scores = {"rougeL_recall": 0.5, "probability": 0.25, "truth_ratio": 0.75}
    return {
        "aggregate": {
            "forget": {**scores, "fact_accuracy": 0.0},
            "retain": {**scores, "fact_accuracy": retain_facts},
            "retain_split": {"n": 18, "rougeL_recall": 0.875, "probability": 0.5,
                             "truth_ratio": None, "fact_accuracy": whole_facts,
                             "exact_memorization": 0.25, "extraction_strength": 0.125,
                             "config": "retain90"},
            "seed_paper": {"verbmem": 0.1, "knowmem": 0.5, "utility": 0.5, "truth_ratio": 0.75},
        },
        "settings": {"retain_split": "retain90"},
    }


def test_the_retain_fact_accuracy_is_the_whole_retain_splits_where_the_other_has_none() -> None:
    from fastngd.reproduce.tofu import summarise_tofu

    summary = summarise_tofu(_tofu_result(None, 1.0))
    assert summary["retain_fact_accuracy"] == summary["retain_split_fact_accuracy"] == 1.0
    assert summary["retain_split_rouge_l_recall"] == 0.875
    assert method_table({"no_unlearn": summary, "methods": {}}).splitlines()[2].split()[-2] \
        == "1.000"
    assert summarise_tofu(_tofu_result(0.5, 1.0))["retain_fact_accuracy"] == 0.5
    result = _tofu_result(0.5, None)
    del result["aggregate"]["retain_split"]
    assert summarise_tofu(result)["retain_split_fact_accuracy"] is None


def test_retain_split_table_shows_the_whole_split() -> None:
    from fastngd.reproduce.tables import retain_split_table

    table = retain_split_table(_tofu_result(None, 1.0), "my-model")
    title, header, _, row = table.splitlines()
    assert title == "Whole retain split retain90 (--retain-split); FactAcc R↑ above is its " \
                    "fact accuracy"
    assert header.split() == ["method", "n", "R-L↑", "prob↑", "FactAcc↑", "EM", "ES"]
    assert row.split() == ["my-model", "18", "0.875", "0.500", "1.000", "0.250", "0.125"]
    assert retain_split_table(_tofu_result(0.5, 1.0)).splitlines()[0] == \
        "Whole retain split retain90 (--retain-split)"
    assert retain_split_table({"aggregate": {"retain_split": None}}) == ""

"""Forget quality (KS p-value) and model utility (harmonic mean)."""

from __future__ import annotations

import pytest

from fastngd.eval import (
    MODEL_UTILITY_COMPONENTS,
    forget_quality,
    forget_quality_from_logs,
    model_utility,
    zero_components,
)


def test_identical_samples_have_p_value_one() -> None:
    sample = [0.1, 0.5, 0.7, 0.9, 1.3]
    assert forget_quality(sample, list(sample)) == pytest.approx(1.0)


def test_separated_samples_have_tiny_p_value() -> None:
    a = [0.01 * i for i in range(40)]
    b = [10 + 0.01 * i for i in range(40)]
    assert forget_quality(a, b) < 1e-10


def test_forget_quality_bad_input() -> None:
    with pytest.raises(ValueError, match="tr_unlearned is empty"):
        forget_quality([], [0.5])
    with pytest.raises(ValueError, match=r"tr_retain_model\[1\] is not finite"):
        forget_quality([0.5], [0.5, float("inf")])


def test_harmonic_mean_known_values() -> None:
    assert model_utility([1.0, 2.0, 4.0]) == pytest.approx(3 / (1 + 0.5 + 0.25))
    assert model_utility([0.5, 0.5]) == pytest.approx(0.5)
    assert model_utility({"prob": 0.2, "rouge": 0.8}) == pytest.approx(2 / (5 + 1.25))


def test_zero_score_gives_zero_utility() -> None:
    assert model_utility([0.9, 0.0, 0.8]) == 0.0


def test_model_utility_bad_input() -> None:
    with pytest.raises(ValueError, match="values is empty"):
        model_utility([])
    with pytest.raises(ValueError, match="negative"):
        model_utility([0.5, -0.1])
    with pytest.raises(ValueError, match="not finite"):
        model_utility([float("nan")])


def test_forget_quality_is_rank_based_so_logs_give_the_same_p_value() -> None:
    import math

    a = [0.2, 0.5, 0.9, 1.4, 3.0]
    b = [0.1, 0.3, 0.4, 0.6, 0.8, 2.5]
    expected = forget_quality(a, b)
    assert forget_quality_from_logs([math.log(v) for v in a], [math.log(v) for v in b]) == (
        pytest.approx(expected)
    )
    # TOFU passes 1/tr: the same p-value
    assert forget_quality([1 / v for v in a], [1 / v for v in b]) == pytest.approx(expected)
    # values whose exp would underflow still work in log form
    assert forget_quality_from_logs([-3000.0, -2000.0], [-3000.0, -2000.0]) == pytest.approx(1.0)


def test_model_utility_components_are_tofuS_nine() -> None:
    assert MODEL_UTILITY_COMPONENTS == (
        "retain_probability",
        "retain_rouge_l_recall",
        "retain_truth_ratio",
        "real_authors_probability",
        "real_authors_rouge_l_recall",
        "real_authors_truth_ratio",
        "world_facts_probability",
        "world_facts_rouge_l_recall",
        "world_facts_truth_ratio",
    )
    components = dict.fromkeys(MODEL_UTILITY_COMPONENTS, 0.5)
    components["retain_truth_ratio"] = 0.0
    components["world_facts_probability"] = None  # type: ignore[assignment]
    assert zero_components(components) == ["retain_truth_ratio"]


def test_forget_quality_hand_computed_exact_ks() -> None:
    # n = m = 2, fully separated: D = 1; exactly 2 of the C(4, 2) = 6 orderings are as
    # extreme (a < b and b < a), so the two-sided exact p-value is 2/6
    assert forget_quality([1.0, 2.0], [3.0, 4.0]) == pytest.approx(1 / 3)

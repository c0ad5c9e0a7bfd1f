"""Forget quality (KS p-value) and model utility (harmonic mean)."""

from __future__ import annotations

import pytest

from fastngd.eval import forget_quality, model_utility


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

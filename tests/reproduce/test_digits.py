"""Digits class unlearning on a tiny subset."""
from __future__ import annotations

import pytest

from fastngd.reproduce.digits import load_digits_data, run_digits


def test_digits_subset_split() -> None:
    data = load_digits_data(0, limit=200)
    assert len(data.y_train) + len(data.y_test) == 200
    assert data.x_train.shape[1] == 64 and float(data.x_train.max()) <= 1.0


def test_ngdiff_forgets_a_class_on_a_subset() -> None:
    res = run_digits(["ngdiff", "gd"], seed=0, limit=400, epochs=6, batch_size=16, lr=0.05,
                     train_epochs=40, log=lambda s: None)
    original = res["original"]
    assert original["train_forget_accuracy"] > 0.9
    ngdiff = res["methods"]["ngdiff"]
    assert ngdiff["train_forget_accuracy"] < 0.2
    assert ngdiff["train_retain_accuracy"] > 0.85 * original["train_retain_accuracy"]
    # retain-only descent does not forget
    assert res["methods"]["gd"]["train_forget_accuracy"] > 0.8
    assert res["base"] == ngdiff["base"] == "sgd"


def test_digits_with_the_adamw_base() -> None:
    res = run_digits(["ngdiff"], seed=0, limit=200, epochs=1, batch_size=16, lr=1e-3,
                     train_epochs=2, optimizer_options={"base": "adamw"}, log=lambda s: None)
    assert res["base"] == res["methods"]["ngdiff"]["base"] == "adamw"
    with pytest.raises(ValueError, match="--momentum"):
        run_digits(["ngdiff"], optimizer_options={"base": "adam", "momentum": 0.9})


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="forget_class"):
        run_digits(["ngdiff"], forget_class=11)
    with pytest.raises(ValueError, match="valid methods"):
        run_digits(["nope"])
    with pytest.raises(ValueError, match="limit"):
        load_digits_data(0, limit=5)

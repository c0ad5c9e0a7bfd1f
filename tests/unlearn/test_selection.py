"""--keep-best METRIC:min|max: parsing and the choice of the best evaluation."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastngd.errors import UsageError
from fastngd.unlearn import parse_keep_best

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
coefs = st.floats(min_value=0.01, max_value=100, allow_nan=False).map(lambda c: round(c, 3))


@given(st.lists(st.tuples(st.sampled_from("+-"), coefs, names), min_size=1, max_size=4,
                unique_by=lambda t: t[2]),
       st.sampled_from(["min", "max"]),
       st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=4, max_size=4))
def test_score_is_the_weighted_sum(terms, mode, values) -> None:
    text = "".join(f"{sign}{coef}*{name}" for sign, coef, name in terms).lstrip("+")
    selection = parse_keep_best(f"{text}:{mode}")
    metrics = {name: values[i] for i, (_, _, name) in enumerate(terms)}
    expected = sum((-c if s == "-" else c) * metrics[n] for s, c, n in terms)
    assert math.isclose(selection.score(metrics), expected, rel_tol=1e-9, abs_tol=1e-6)
    assert selection.mode == mode and selection.metrics == [n for _, _, n in terms]


@given(st.floats(allow_nan=True), st.one_of(st.none(), st.floats(allow_nan=True)))
def test_better_follows_the_direction(score, best) -> None:
    low, high = parse_keep_best("m:min"), parse_keep_best("m:max")
    if not math.isfinite(score):
        assert not low.better(score, best) and not high.better(score, best)
    elif best is None or not math.isfinite(best):
        assert low.better(score, best) and high.better(score, best)
    else:
        assert low.better(score, best) == (score < best)
        assert high.better(score, best) == (score > best)


def test_combined_score_and_plain_names() -> None:
    sel = parse_keep_best("retain_rouge_l_recall-forget_rouge_l_recall:max")
    assert sel.terms == ((1.0, "retain_rouge_l_recall"), (-1.0, "forget_rouge_l_recall"))
    assert sel.score({"retain_rouge_l_recall": 0.9, "forget_rouge_l_recall": 0.2}) == \
        pytest.approx(0.7)
    assert math.isnan(parse_keep_best("a:min").score({"a": None}))


@pytest.mark.parametrize("text", ["loss", "loss:lowest", ":min", "a b:min", "2*:max", "a+*b:min"])
def test_bad_selections_are_usage_errors(text) -> None:
    with pytest.raises(UsageError, match="--keep-best"):
        parse_keep_best(text)


def test_missing_metric_names_the_available_ones() -> None:
    with pytest.raises(UsageError, match="no metric.*available.*forget_rouge"):
        parse_keep_best("utility:max").score({"step": 3, "forget_rouge_l_recall": 0.1})

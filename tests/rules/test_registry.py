"""The rule table: lookup, options, flags."""
from __future__ import annotations

import pytest

from fastngd.rules import RULES, CombineRule, get_rule
from fastngd.rules.elementwise import MODES


def test_gdiff_without_c_is_vanilla_gdiff_by_name() -> None:
    """``rule="gdiff"`` means c = 0.5, and says so: the same rule, name and checkpoint key as
    an explicit ``c=0.5``."""
    assert get_rule("gdiff").name == get_rule("gdiff", c=0.5).name == "gdiff-0.5"
    assert get_rule("gdiff", c=0.3).name == "gdiff-0.3"


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="valid rules"):
        get_rule("adam")
    with pytest.raises(TypeError, match="takes no options"):
        get_rule("ngdiff", c=0.5)
    with pytest.raises(TypeError, match="takes only"):
        get_rule("gdiff", alpha=1.0)
    with pytest.raises(ValueError, match="c"):
        get_rule("gdiff", c=1.5)
    with pytest.raises(ValueError, match=">= 0"):
        get_rule("surgery_blur", gamma=-1.0)
    with pytest.raises(ValueError, match="finite"):
        get_rule("surgery_pcgrad", eps=float("nan"))
    with pytest.raises(TypeError, match="number"):
        get_rule("surgery_sago", alpha="big")


def test_flags() -> None:
    assert [n for n, r in RULES.items() if r.needs_losses] == ["lossnorm"]
    assert [n for n, r in RULES.items() if r.random] == ["rlw"]
    assert [n for n, r in RULES.items() if r.per_tensor] == ["surgery_pcgrad"]
    assert {r.mode for r in RULES.values()} == set(MODES)
    for rule in RULES.values():
        assert rule.elementwise == (rule.mode != "linear")
        assert not rule.per_coordinate or rule.retain_safe


def test_eps_zero_makes_the_projection_sides_exact() -> None:
    """With the authors' ε the projecting strategies lose their Lemma-4 side (see
    tests/rules/test_surgery.py for the counterexamples); with ε = 0 they have it."""
    for name in ("surgery_pcgrad", "surgery_pcgrad_global"):
        assert not RULES[name].retain_safe
        assert get_rule(name, eps=0.0).retain_safe
    assert not RULES["surgery_blur"].forget_safe
    assert get_rule("surgery_blur", eps=0.0).forget_safe
    assert get_rule("surgery_blur", eps=0.0).name == "surgery_blur[alpha=1,gamma=1,eps=0]"


def test_bad_rule_definitions() -> None:
    with pytest.raises(ValueError, match="mode"):
        CombineRule("x", RULES["ngdiff"].weights, mode="nope")
    with pytest.raises(ValueError, match="per_coordinate"):
        CombineRule("x", RULES["ngdiff"].weights, per_coordinate=True)

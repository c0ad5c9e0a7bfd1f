"""The method registry."""
from __future__ import annotations

import pytest

from fastngd.rules import RULES
from fastngd.unlearn import METHODS, get_method


def test_every_method_uses_a_known_rule() -> None:
    for method in METHODS.values():
        assert method.rule in RULES
        assert method.objective in ("ce", "npo", "simnpo")


def test_required_methods_present() -> None:
    required = {"ngdiff", "gdiff", "ga", "gd", "lossnorm", "npo", "simnpo", "rlw", "pcgrad",
                "imtlg", "mgda", "sago"}
    assert required <= set(METHODS)


def test_gdiff_with_c() -> None:
    method = get_method("GDiff-0.9")
    assert method.name == "gdiff-0.9" and method.rule_options == {"c": 0.9}
    assert get_method("gdiff_0.1").rule_options == {"c": 0.1}


@pytest.mark.parametrize("name", ["gdiff-1.5", "nope", "gdiff-"])
def test_bad_names_list_valid_ones(name: str) -> None:
    with pytest.raises(ValueError, match="ngdiff|0 <= c"):
        get_method(name)

"""The per-item math of the torch backend: scale-robust dot products and weight splitting."""
from __future__ import annotations

import math

import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from fastngd.backends import _fused


@given(k=st.integers(-44, 37), mantissa=st.floats(1.0, 3.0))
def test_dots_are_right_at_every_float32_scale(k: int, mantissa: float) -> None:
    g = torch.Generator().manual_seed(k + 100)
    x = (torch.randn(777, generator=g, dtype=torch.float64) * mantissa * 10.0**k).float()
    y = (torch.randn(777, generator=g, dtype=torch.float64) * mantissa * 10.0**k).float()
    assume(bool(torch.isfinite(x).all() and torch.isfinite(y).all()))
    x64, y64 = x.double(), y.double()
    rr, ff, rf = _fused.gram_row(x, y)
    exact = [float(x64 @ x64), float(y64 @ y64), float(x64 @ y64)]
    scale = [exact[0], exact[1], math.sqrt(exact[0] * exact[1])]
    for got, want, s in zip((rr, ff, rf), exact, scale):
        assert math.isfinite(got) and abs(got - want) <= 1e-5 * s
    assert abs(_fused.dot(x, y) - exact[2]) <= 1e-5 * scale[2]


@given(w=st.floats(1e-300, 1e300))
def test_split_weights_are_exact_and_normal(w: float) -> None:
    w1, w2 = _fused._split(w, torch.float32)
    assert w1 * w2 == w
    tiny, big = 2.0**-126, 2.0**127
    if 1e-70 < w < 1e70:  # the range where two float32-normal factors exist
        assert tiny <= w1 <= big and tiny <= abs(w2) <= big
    assert _fused._split(w, torch.float64) == (1.0, w)


def test_zero_vectors_give_zero() -> None:
    z = torch.zeros(10)
    assert _fused.gram_row(z, z) == (0.0, 0.0, 0.0)

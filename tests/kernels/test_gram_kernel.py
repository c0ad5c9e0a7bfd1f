"""Gram kernel (two launches) against the float64 reference: whole bucket and per tensor,
exact and compact storage, bitwise determinism, every finite scale."""
from __future__ import annotations

import pytest
import torch
from fastngd.kernels import gram as kgram
from fastngd.kernels import naive
from hypothesis import given, settings
from hypothesis import strategies as st

from fastngd.compact import code_table, quantize_blockwise

from ._util import DTYPES, GEO, GEO_MULTI, bucket, table


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


@pytest.mark.parametrize("dtype", DTYPES)
def test_gram_matches_float64_reference(dtype: torch.dtype) -> None:
    r, f = bucket(dtype, 1), bucket(dtype, 2)
    tab = table({"R": r, "F": f})
    assert tab.num_rows == 4  # a whole chunk, a partial one, two small tensors
    out = kgram.gram(tab, dtype, GEO)
    rows = kgram.gram(tab, dtype, GEO, per_tensor=len(r))
    assert out.dtype == rows.dtype == torch.float64 and out.shape == (3,) and rows.shape == (3, 3)
    # products of the stored values are exact in float64: only the sums round
    assert _rel(out, naive.gram(r, f)) <= 1e-14
    assert _rel(rows, naive.gram(r, f, per_tensor=True)) <= 1e-14


def test_gram_per_tensor_leaves_rows_outside_the_table_zero() -> None:
    r, f = bucket(torch.float32, 3, sizes=(300, 7, 40)), bucket(torch.float32, 4, sizes=(300, 7, 40))
    tab = table({"R": [r[0], r[2]], "F": [f[0], f[2]]})  # table indices 0, 1 ...
    rows = kgram.gram(tab, torch.float32, GEO_MULTI, per_tensor=2)
    want = naive.gram([r[0], r[2]], [f[0], f[2]], per_tensor=True)
    assert _rel(rows, want) <= 1e-14
    idx = [0, 2]  # ... or the bucket's own indices, with a gap
    from fastngd.kernels.pointer_table import build_table
    gap = build_table({"R": [r[i].data_ptr() for i in idx], "F": [f[i].data_ptr() for i in idx]},
                      [300, 40], idx, GEO.chunk, torch.device("cpu"))
    rows = kgram.gram(gap, torch.float32, GEO, per_tensor=3)
    assert torch.equal(rows[1], torch.zeros(3, dtype=torch.float64))
    assert _rel(rows[[0, 2]], want) <= 1e-14


def test_gram_is_bitwise_deterministic() -> None:
    r, f = bucket(torch.float32, 5), bucket(torch.float32, 6)
    tab = table({"R": r, "F": f})
    assert torch.equal(kgram.gram(tab, torch.float32, GEO), kgram.gram(tab, torch.float32, GEO))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gram_dequantizes_codes_on_the_fly(dtype: torch.dtype) -> None:
    r, f = bucket(dtype, 7), bucket(dtype, 8)
    q = [quantize_blockwise(t) for t in r]
    tab = table({"R": [x.codes for x in q], "A": [x.absmax for x in q], "F": f})
    out = kgram.gram(tab, dtype, GEO, quant=True, code=code_table())
    ref = naive.gram(q, f)  # the stored gradient's Gram, not the original's
    assert _rel(out, ref) <= 1e-14
    assert _rel(naive.gram(r, f), ref) > 1e-6  # quantisation is visible
    with pytest.raises(ValueError, match="code table"):
        kgram.gram(tab, dtype, GEO, quant=True)


_SCALES = st.floats(min_value=-30.0, max_value=30.0).map(lambda e: 10.0**e)


@settings(max_examples=12, deadline=None)
@given(sr=_SCALES, sf=_SCALES, dtype=st.sampled_from([torch.float32, torch.bfloat16]),
       seed=st.integers(0, 2**16))
def test_gram_is_right_at_every_scale(sr: float, sf: float, dtype: torch.dtype, seed: int) -> None:
    """Gradients scaled by 1e-30 … 1e30: squares reach 1e-60 … 1e60, beyond float32; the
    float64 products keep every entry within float64 rounding of the reference, and the
    cosine finite."""
    r = [(t.double() * sr).to(dtype) for t in bucket(torch.float64, seed, sizes=(300, 5))]
    f = [(t.double() * sf).to(dtype) for t in bucket(torch.float64, seed + 1, sizes=(300, 5))]
    out = kgram.gram(table({"R": r, "F": f}), dtype, GEO)
    want = naive.gram(r, f)
    assert torch.all(want[:2] > 0) and torch.isfinite(want).all()
    torch.testing.assert_close(out, want, rtol=1e-13, atol=0)
    cosine = out[2] / (out[0].sqrt() * out[1].sqrt())
    assert torch.isfinite(cosine) and abs(cosine.item()) <= 1.0

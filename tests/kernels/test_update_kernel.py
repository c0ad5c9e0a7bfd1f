"""Update kernel (linear and SAGO, exact and compact) against the float64 reference."""
from __future__ import annotations

import math

import pytest
import torch
from fastngd.kernels import naive
from fastngd.kernels import update as kupdate
from hypothesis import given, settings
from hypothesis import strategies as st

from fastngd.compact import code_table, quantize_blockwise

from ._util import BLOCK, CHUNK, assert_close64, bucket, table

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]


def _run(p, r, f, lr, w, sago, quant=False):
    if quant:
        tab = table([p, [x.codes for x in r], [x.absmax for x in r], f])
    else:
        tab = table([p, r, f])
    kupdate.update(tab, lr, w, p[0], CHUNK, BLOCK, sago=sago, quant=quant,
                   code=code_table() if quant else None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sago", [False, True])
def test_update_matches_reference(dtype: torch.dtype, sago: bool) -> None:
    p, r, f = bucket(dtype, 1), bucket(dtype, 2), bucket(dtype, 3)
    lr = torch.tensor([0.1, 0.5, 0.0, 2.0])
    w = torch.tensor([0.7, 1.3])
    ref = naive.update(p, r, f, lr.tolist(), w.tolist(), sago)
    p0 = [t.clone() for t in p]
    _run(p, r, f, lr, w, sago)
    for got, exp in zip(p, ref):
        assert_close64(got, exp, dtype)
    assert torch.equal(p[2], p0[2])  # lr == 0: untouched


@pytest.mark.parametrize("sago", [False, True])
def test_compact_update_uses_stored_gradient(sago: bool) -> None:
    p, r, f = bucket(torch.float32, 4), bucket(torch.float32, 5), bucket(torch.float32, 6)
    q = [quantize_blockwise(t) for t in r]
    lr = torch.tensor([0.3, 0.3, 0.3, 0.3])
    w = torch.tensor([1.0, 0.5])
    ref = naive.update(p, q, f, lr.tolist(), w.tolist(), sago)
    _run(p, q, f, lr, w, sago, quant=True)
    for got, exp in zip(p, ref):
        assert_close64(got, exp, torch.float32)


def test_zero_lr_rows_read_and_write_nothing() -> None:
    p, r, f = bucket(torch.float32, 7), bucket(torch.float32, 8), bucket(torch.float32, 9)
    r[1].fill_(math.nan)
    f[1].fill_(math.inf)
    p0 = [t.clone() for t in p]
    lr = torch.tensor([0.0, 0.0, 0.0, 0.0])
    _run(p, r, f, lr, torch.tensor([1.0, 1.0]), False)
    assert all(torch.equal(a, b) for a, b in zip(p, p0))


def test_sago_mask_uses_signs_not_an_underflowing_product() -> None:
    # r·f = 1e-60 underflows to 0 in float32, but the signs agree: retain direction.
    p = [torch.zeros(300)]
    r = [torch.full((300,), 1e-30)]
    f = [torch.full((300,), 1e-30)]
    _run(p, r, f, torch.tensor([1.0]), torch.tensor([2.0, 3.0]), True)
    assert torch.equal(p[0], torch.full((300,), -2e-30))


@settings(max_examples=12)
@given(
    n=st.integers(min_value=1, max_value=900),
    lr=st.floats(min_value=-4.0, max_value=4.0, allow_nan=False),
    wr=st.floats(min_value=0.0, max_value=3.0),
    wf=st.floats(min_value=0.0, max_value=3.0),
    sago=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_update_property(n: int, lr: float, wr: float, wf: float, sago: bool, seed: int) -> None:
    p, r, f = (bucket(torch.float32, seed + k, sizes=(n, 2)) for k in range(3))
    lr_t = torch.tensor([lr, 0.25], dtype=torch.float32)
    w = torch.tensor([wr, wf], dtype=torch.float32)
    ref = naive.update(p, r, f, lr_t.tolist(), w.tolist(), sago)
    _run(p, r, f, lr_t, w, sago)
    for got, exp in zip(p, ref):
        torch.testing.assert_close(got.double(), exp, rtol=1e-5, atol=1e-5)

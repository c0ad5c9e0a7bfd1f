"""GeN perturbation from the backup: against the reference, bit-exact restore, bf16 rounding."""
from __future__ import annotations

import math

import pytest
import torch
from fastngd.kernels import gen as kgen
from fastngd.kernels import naive

from ._util import DTYPES, GEO, GEO_MULTI, assert_close64, bucket, same_bits, table


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("dtype", DTYPES)
def test_perturb_matches_reference_and_zero_scale_restores_bit_exactly(dtype: torch.dtype) -> None:
    p, b, d = bucket(dtype, 7), bucket(dtype, 8), bucket(dtype, 9)
    d[2][:5] = math.inf  # 0·inf would be NaN: a zero scale must not compute b + 0·d
    scale = torch.tensor([0.3, -0.3, 0.0], dtype=torch.float64)
    tab = table({"P": p, "X": b, "R": d})
    kgen.perturb(tab, scale, dtype, GEO)
    ref = naive.perturb(b, d, scale.tolist())
    for i in range(2):
        assert_close64(p[i], ref[i], dtype)
    assert same_bits([p[2]], [b[2]])
    kgen.perturb(tab, torch.zeros(3, dtype=torch.float64), dtype, GEO_MULTI)
    assert same_bits(p, b)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_bfloat16_stores_round_to_nearest_even_exactly() -> None:
    """p = bf16(float32(b) + s·float32(d)) bit for bit: ties to even, overflow, NaN."""
    g = torch.Generator().manual_seed(0)
    b = torch.randn(300, generator=g).to(torch.bfloat16)
    d = torch.randn(300, generator=g).to(torch.bfloat16)
    b[:4] = torch.tensor([1.0, -1.0, 3.3e38, 0.0])
    d[:4] = torch.tensor([2.0**-8, -(2.0**-8) * 3, 3.3e38, math.nan])
    p = torch.empty_like(b)
    scale = torch.tensor([0.37], dtype=torch.float64)
    kgen.perturb(table({"P": [p], "X": [b], "R": [d]}), scale, torch.bfloat16, GEO)
    want = (b.float() + scale.float() * d.float()).to(torch.bfloat16)
    assert torch.isnan(p[3]) and torch.isinf(p[2])
    keep = torch.arange(300) != 3
    assert torch.equal(p[keep].view(torch.int16), want[keep].view(torch.int16))

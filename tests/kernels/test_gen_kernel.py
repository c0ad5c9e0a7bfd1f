"""GeN kernels: direction/backup and perturb-from-backup (bit-exact restore)."""
from __future__ import annotations

import math

import pytest
import torch
from fastngd.kernels import gen as kgen
from fastngd.kernels import naive

from fastngd.compact import code_table, quantize_blockwise

from ._util import BLOCK, CHUNK, assert_close64, bucket, table

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sago", [False, True])
def test_direction_and_backup_in_place(dtype: torch.dtype, sago: bool) -> None:
    p, r, f = bucket(dtype, 1), bucket(dtype, 2), bucket(dtype, 3)
    w = torch.tensor([0.4, 0.9])
    expected = [naive.direction(a, b, w.tolist(), sago) for a, b in zip(r, f)]
    p0 = [t.clone() for t in p]
    kgen.direction_and_backup(table([p, r, f]), w, p[0], CHUNK, BLOCK, sago=sago)
    for d, exp in zip(r, expected):
        assert_close64(d, exp, dtype)
    assert all(torch.equal(b, x) for b, x in zip(f, p0))  # bit-exact backup
    assert all(torch.equal(a, b) for a, b in zip(p, p0))  # θ untouched


def test_compact_direction_goes_to_forget_buffer_and_backup_to_fresh_memory() -> None:
    p, r, f = bucket(torch.float32, 4), bucket(torch.float32, 5), bucket(torch.float32, 6)
    q = [quantize_blockwise(t) for t in r]
    w = torch.tensor([1.0, 0.5])
    expected = [naive.direction(a, b, w.tolist()) for a, b in zip(q, f)]
    backup = [torch.empty_like(t) for t in p]
    tab = table([p, [x.codes for x in q], [x.absmax for x in q], f, backup])
    kgen.direction_and_backup(tab, w, p[0], CHUNK, BLOCK, quant=True, code=code_table())
    for d, exp in zip(f, expected):
        assert_close64(d, exp, torch.float32)
    assert all(torch.equal(b, x) for b, x in zip(backup, p))


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("dtype", DTYPES)
def test_perturb_matches_reference_and_zero_scale_restores_bit_exactly(dtype: torch.dtype) -> None:
    p, b, d = bucket(dtype, 7), bucket(dtype, 8), bucket(dtype, 9)
    d[3][:5] = math.inf  # 0·inf would be NaN: a zero scale must not compute b + 0·d
    scale = torch.tensor([0.3, -0.3, 1e-3, 0.0])
    tab = table([p, b, d])
    kgen.perturb(tab, scale, p[0], CHUNK, BLOCK)
    ref = naive.perturb(b, d, scale.tolist())
    for i in range(3):
        assert_close64(p[i], ref[i], dtype)
    assert torch.equal(p[3], b[3])
    kgen.perturb(tab, torch.zeros(4), p[0], CHUNK, BLOCK)
    assert all(torch.equal(x, y) for x, y in zip(p, b))


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_bfloat16_stores_round_to_nearest_even_exactly() -> None:
    """p = bf16(float32(b) + s·float32(d)) bit for bit, ties and specials included."""
    g = torch.Generator().manual_seed(0)
    b = torch.randn(1000, generator=g).to(torch.bfloat16)
    d = torch.randn(1000, generator=g).to(torch.bfloat16)
    b[:4] = torch.tensor([1.0, -1.0, 3.3e38, 0.0])
    d[:4] = torch.tensor([2.0**-8, -(2.0**-8) * 3, 3.3e38, math.nan])  # ties to even, overflow, NaN
    p = torch.empty_like(b)
    scale = torch.tensor([0.37])
    kgen.perturb(table([[p], [b], [d]]), scale, p, CHUNK, BLOCK)
    want = (b.float() + scale * d.float()).to(torch.bfloat16)
    assert torch.isnan(p[3]) and torch.isinf(p[2])
    keep = torch.arange(1000) != 3
    assert torch.equal(p[keep].view(torch.int16), want[keep].view(torch.int16))

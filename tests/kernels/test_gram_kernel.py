"""Gram kernel (two launches) against the float64 reference; bitwise determinism."""
from __future__ import annotations

import pytest
import torch
from fastngd.kernels import gram as kgram
from fastngd.kernels import naive

from fastngd.compact import code_table, quantize_blockwise

from ._util import BLOCK, CHUNK, TOL, bucket, table

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_gram_matches_float64_reference(dtype: torch.dtype) -> None:
    r, f = bucket(dtype, 1), bucket(dtype, 2)
    tab = table([r, f])
    assert tab.shape[0] >= 2 * len(r) - 1  # several programs, ≥ 2 chunks for big tensors
    out = kgram.gram(tab, f[0], CHUNK, BLOCK, sum_block=4)  # sum_block 4: a multi-step stage 2
    assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    ref = naive.gram(r, f)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol * ref.abs().max().item())


def test_gram_is_bitwise_deterministic() -> None:
    r, f = bucket(torch.float32, 3), bucket(torch.float32, 4)
    tab = table([r, f])
    a = kgram.gram(tab, f[0], CHUNK, BLOCK)
    b = kgram.gram(tab, f[0], CHUNK, BLOCK)
    assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gram_dequantizes_codes_on_the_fly(dtype: torch.dtype) -> None:
    r, f = bucket(dtype, 5), bucket(dtype, 6)
    q = [quantize_blockwise(t) for t in r]
    tab = table([[x.codes for x in q], [x.absmax for x in q], f])
    out = kgram.gram(tab, f[0], CHUNK, BLOCK, quant=True, code=code_table())
    ref = naive.gram(q, f)  # the stored gradient's Gram, not the original's
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-4)
    exact = naive.gram(r, f)
    assert not torch.allclose(ref, exact, rtol=1e-7, atol=0)  # quantisation is visible


def test_tolerance_table_covers_all_dtypes() -> None:
    assert set(DTYPES) <= set(TOL)

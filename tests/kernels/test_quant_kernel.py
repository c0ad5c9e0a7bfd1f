"""Quantize kernel: codes and scales bit-identical to the PyTorch implementation."""
from __future__ import annotations

import math

import pytest
import torch
from fastngd.kernels import quant as kquant

from fastngd.compact import QuantizedTensor, code_midpoints, num_blocks, quantize_blockwise

from ._util import GEO, bucket, table


def _quantize(xs, block: int = 256):
    out = [QuantizedTensor(torch.empty(x.numel(), dtype=torch.uint8),
                           torch.empty(num_blocks(x.numel())), x.shape, x.dtype) for x in xs]
    tab = table({"F": xs, "R": [q.codes for q in out], "A": [q.absmax for q in out]}, chunk=512)
    kquant.quantize(tab, xs[0].dtype, code_midpoints(), 512, block)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_codes_equal_the_torch_implementation(dtype: torch.dtype) -> None:
    xs = bucket(dtype, 11, sizes=(1100, 1, 45))
    xs[0][:256] = 0.0  # an all-zero block
    xs[0][300:310] *= 1e4  # an outlier block
    for got, x in zip(_quantize(xs, block=512 if dtype == torch.float32 else 256), xs):
        ref = quantize_blockwise(x)
        assert torch.equal(got.codes, ref.codes)
        assert torch.equal(got.absmax, ref.absmax)


def test_exact_levels_and_midpoint_ties_match() -> None:
    mids = code_midpoints()
    x = torch.cat([torch.tensor([1.0, -1.0, 0.0, -0.0]), mids, -mids, mids[:125] * 0.999])
    got = _quantize([x, torch.ones(3)])[0]
    ref = quantize_blockwise(x)
    assert torch.equal(got.codes, ref.codes) and torch.equal(got.absmax, ref.absmax)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_non_finite_blocks_dequantize_non_finite() -> None:
    x = torch.randn(600)
    x[10] = math.nan
    x[400] = math.inf
    q = _quantize([x, torch.ones(2)])[0]
    deq = q.dequantize()
    assert math.isnan(q.absmax[0].item()) and math.isinf(q.absmax[1].item())
    assert not torch.isfinite(deq[:512]).any()
    assert torch.isfinite(deq[512:]).all()


def test_quantize_rejects_a_chunk_off_the_block_grid() -> None:
    with pytest.raises(ValueError, match="multiple of 256"):
        kquant.quantize(table({"F": [torch.zeros(4)]}), torch.float32, code_midpoints(), 128)
    with pytest.raises(ValueError, match="dividing"):
        kquant.quantize(table({"F": [torch.zeros(4)]}), torch.float32, code_midpoints(), 1024, 768)
    assert GEO.chunk % 256 == 0

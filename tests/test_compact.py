"""Blockwise 8-bit storage: code, error bounds, Lemma 4 on the stored gradient, state."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fastngd.compact import (
    BLOCK_SIZE,
    QuantizedTensor,
    code_magnitudes,
    code_midpoints,
    code_table,
    encode_blocks,
    quantize_blockwise,
)


def _heavy_tailed(kind: str, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator=g, dtype=torch.float64)
    if kind == "gauss":
        return z
    if kind == "t2":  # Student-t with 2 degrees of freedom
        chi = torch.randn(n, 2, generator=g, dtype=torch.float64).pow(2).sum(1)
        return z / torch.sqrt(chi / 2)
    if kind == "outliers":
        return z * torch.where(torch.rand(n, generator=g) < 0.004, 50.0, 1.0).double()
    if kind == "lognormal_scale":
        return z * torch.exp(2 * torch.randn(n, generator=g, dtype=torch.float64))
    raise AssertionError(kind)


KINDS = ["gauss", "t2", "outliers", "lognormal_scale"]


def test_code_levels() -> None:
    q = code_magnitudes()
    assert q.dtype == torch.float32 and q.shape == (128,)
    assert q[0].item() == 0.0 and q[-1].item() == 1.0
    assert bool((q[1:] > q[:-1]).all())
    mids = code_midpoints()
    assert bool((mids > q[:-1]).all() and (mids < q[1:]).all())
    table = code_table()
    assert table.shape == (256,) and torch.equal(table[128:], -q)
    # geometric near the top: relative step ≈ a·coth(a)/127 ≈ 3.2 %
    assert 0.02 < ((q[-1] - q[-2]) / q[-2]).item() < 0.04


def test_layout_and_size() -> None:
    x = torch.randn(1000)
    q = quantize_blockwise(x)
    assert q.codes.dtype == torch.uint8 and q.codes.shape == (1000,)
    assert q.absmax.dtype == torch.float32 and q.absmax.shape == (4,)
    assert q.shape == x.shape and q.dtype == x.dtype and q.numel() == 1000
    assert q.nbytes == 1000 + 4 * 4
    assert q.nbytes / x.nbytes == pytest.approx(0.254, abs=0.002)
    assert torch.equal(q.absmax[:3], x[:768].view(3, 256).abs().amax(1))
    assert q.absmax[3].item() == x[768:].abs().max().item()


@pytest.mark.parametrize("kind", KINDS)
def test_l2_error_below_two_percent(kind: str) -> None:
    x = _heavy_tailed(kind, 1 << 16, 0).float()
    err = (quantize_blockwise(x).dequantize() - x).norm() / x.norm()
    assert err.item() < 0.012


@pytest.mark.parametrize("kind", KINDS)
def test_ngdiff_direction_error_below_two_percent(kind: str) -> None:
    r = _heavy_tailed(kind, 1 << 16, 1).float()
    f = (0.3 * r + _heavy_tailed(kind, 1 << 16, 2).float())
    rq = quantize_blockwise(r).dequantize()
    d = r / r.norm() - f / f.norm()
    dq = rq / rq.norm() - f / f.norm()
    assert ((dq - d).norm() / d.norm()).item() <= 0.02


_FLOATS = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)


@given(arrays(np.float32, st.integers(1, 700), elements=_FLOATS))
def test_elementwise_error_is_half_the_local_gap(a: np.ndarray) -> None:
    x = torch.from_numpy(a.copy())
    q = quantize_blockwise(x)
    deq = q.dequantize()
    scale = q.absmax.repeat_interleave(BLOCK_SIZE)[: x.numel()]
    mags = code_magnitudes()
    j = (q.codes.long() & 127)
    gap = torch.maximum(mags[(j + 1).clamp(max=127)] - mags[j], mags[j] - mags[(j - 1).clamp(min=0)])
    assert bool(((deq - x).abs() <= 0.5 * gap * scale * (1 + 1e-5) + 1e-30).all())
    assert bool((deq * x >= 0).all())  # the sign is kept
    # the block maximum is stored exactly
    for b in range(q.absmax.numel()):
        blk = x[b * BLOCK_SIZE:(b + 1) * BLOCK_SIZE]
        k = int(blk.abs().argmax())
        assert deq[b * BLOCK_SIZE + k].item() == blk[k].item()


@given(
    seed=st.integers(0, 2**16),
    corr=st.floats(-1.0, 1.0),
    log_ratio=st.floats(-6.0, 6.0),
    kind=st.sampled_from(KINDS),
)
@settings(max_examples=40)
def test_lemma4_holds_for_the_stored_gradient(seed: int, corr: float, log_ratio: float,
                                              kind: str) -> None:
    """With norms from the codes, d = r̃/‖r̃‖ − f/‖f‖ gives r̃·d ≥ 0 ≥ f·d."""
    n = 777
    r = _heavy_tailed(kind, n, seed).float()
    f = (corr * r + math.sqrt(max(0.0, 1 - corr * corr)) * _heavy_tailed(kind, n, seed + 7))
    f = (f * math.exp(log_ratio)).float()
    rq = quantize_blockwise(r).dequantize(torch.float32).double()
    f64 = f.double()
    d = rq / rq.norm() - f64 / f64.norm()
    slack = 1e-12 * rq.norm() * d.norm().clamp(min=1.0)
    assert (rq @ d).item() >= -slack
    assert (f64 @ d).item() <= 1e-12 * f64.norm() * d.norm().clamp(min=1.0)


def test_zero_empty_and_non_finite() -> None:
    z = quantize_blockwise(torch.zeros(300, dtype=torch.bfloat16))
    assert torch.equal(z.absmax, torch.zeros(2)) and torch.equal(z.dequantize(), torch.zeros(300, dtype=torch.bfloat16))
    e = quantize_blockwise(torch.empty(0, 3))
    assert e.numel() == 0 and e.dequantize().shape == (0, 3)
    x = torch.randn(600)
    x[3] = math.nan
    deq = quantize_blockwise(x).dequantize()
    assert torch.isnan(deq[:256]).all() and torch.isfinite(deq[256:]).all()


def test_non_contiguous_input_is_quantized_in_logical_order() -> None:
    x = torch.randn(30, 20).t()
    assert not x.is_contiguous()
    a, b = quantize_blockwise(x), quantize_blockwise(x.contiguous())
    assert torch.equal(a.codes, b.codes) and a.shape == (20, 30)
    torch.testing.assert_close(a.dequantize(), x, rtol=0.02, atol=2e-3 * x.abs().max().item())


def test_dequantize_dtype_and_rounding_once() -> None:
    x = torch.randn(500, dtype=torch.bfloat16)
    q = quantize_blockwise(x)
    full = q.dequantize(torch.float32)
    assert full.dtype == torch.float32 and q.dequantize().dtype == torch.bfloat16
    assert torch.equal(q.dequantize(), full.to(torch.bfloat16))


def test_state_round_trip_through_torch_save() -> None:
    q = quantize_blockwise(torch.randn(3, 700, dtype=torch.bfloat16))
    buf = io.BytesIO()
    torch.save({"retain": q.to_state()}, buf)
    buf.seek(0)
    back = QuantizedTensor.from_state(torch.load(buf, weights_only=True)["retain"])
    assert torch.equal(back.codes, q.codes) and torch.equal(back.absmax, q.absmax)
    assert back.absmax.dtype == torch.float32 and back.shape == q.shape and back.dtype == q.dtype
    assert torch.equal(back.dequantize(), q.dequantize())
    # codes survive a float cast of the state (as Optimizer.load_state_dict would apply)
    state = q.to_state()
    state["codes"] = state["codes"].to(torch.bfloat16)
    assert torch.equal(QuantizedTensor.from_state(state).codes, q.codes)


def test_invalid_input_raises() -> None:
    with pytest.raises(TypeError, match="floating"):
        quantize_blockwise(torch.arange(4))
    with pytest.raises(TypeError, match="Tensor"):
        quantize_blockwise([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="codes"):
        QuantizedTensor(torch.zeros(4), torch.zeros(1), torch.Size([4]), torch.float32)
    with pytest.raises(ValueError, match="absmax"):
        QuantizedTensor(torch.zeros(4, dtype=torch.uint8), torch.zeros(2), torch.Size([4]),
                        torch.float32)
    with pytest.raises(ValueError, match="lacks keys"):
        QuantizedTensor.from_state({"codes": torch.zeros(1)})
    state = quantize_blockwise(torch.ones(2)).to_state()
    state["dtype"] = "nonsense"
    with pytest.raises(ValueError, match="unknown dtype"):
        QuantizedTensor.from_state(state)


@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e30]))
def test_encode_blocks_matches_a_binary_search(seed: int, scale: float) -> None:
    """The shape-inverting level search equals ``torch.bucketize`` over the thresholds,
    including values placed exactly on thresholds and levels."""
    g = torch.Generator().manual_seed(seed)
    mids, mags = code_midpoints(torch.device("cpu")), code_table(torch.device("cpu"))[:128]
    x = torch.cat([torch.randn(700, generator=g), mids, mags, -mids, torch.zeros(3)]) * scale
    codes, absmax = encode_blocks(x)
    n = x.numel()
    xb = torch.cat([x, x.new_zeros(-n % BLOCK_SIZE)]).view(-1, BLOCK_SIZE)
    y = xb.abs() / torch.where(absmax > 0, absmax, torch.ones_like(absmax))[:, None]
    j = torch.bucketize(y, mids, right=False).clamp_(max=127)
    expected = (j + 128 * (xb < 0).long()).to(torch.uint8).view(-1)[:n]
    assert torch.equal(codes, expected)

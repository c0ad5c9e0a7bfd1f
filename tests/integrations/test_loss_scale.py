"""The dynamic fp16 loss scale: exact unscaling, overflow detection, the schedule."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastngd.integrations.loss_scale import DynamicLossScaler


@settings(deadline=None, max_examples=60)
@given(st.lists(st.booleans(), max_size=40), st.integers(1, 5),
       st.sampled_from([2.0, 4.0]), st.sampled_from([0.5, 0.25]))
def test_schedule_matches_a_plain_reference(found, interval, growth, backoff) -> None:
    scaler = DynamicLossScaler(init_scale=1024.0, growth_factor=growth, backoff_factor=backoff,
                               growth_interval=interval)
    scale, streak = 1024.0, 0
    for bad in found:
        scaler.update(torch.tensor(bad))
        if bad:
            scale, streak = scale * backoff, 0
        else:
            streak += 1
            if streak == interval:
                scale, streak = scale * growth, 0
        assert float(scaler.scale) == scale and int(scaler.streak) == streak


@settings(deadline=None, max_examples=40)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=1, max_size=20),
       st.integers(0, 20))
def test_unscale_is_exact_for_power_of_two_scales(values, exponent) -> None:
    scaler = DynamicLossScaler(init_scale=2.0 ** exponent)
    grad = torch.tensor(values, dtype=torch.float32)
    scaled = grad * 2.0 ** exponent
    bad = scaler.unscale_([scaled])
    assert not bool(bad) and torch.equal(scaled, grad)


def test_overflow_is_found_and_scaled_losses_keep_their_dtype() -> None:
    scaler = DynamicLossScaler(init_scale=2.0 ** 16)
    grads = [torch.ones(3), torch.tensor([1.0, float("inf")]), torch.tensor([float("nan")])]
    assert bool(scaler.unscale_(grads))
    assert bool(scaler.unscale_([torch.ones(2, dtype=torch.float16)])) is False
    half = torch.tensor(3.0, dtype=torch.float16)
    assert scaler.scale_loss(half).dtype == torch.float32  # 3·65536 would overflow fp16
    assert float(scaler.scale_loss(half)) == 3.0 * 2 ** 16
    assert not bool(scaler.unscale_([]))


def test_state_round_trip_and_bad_settings() -> None:
    a = DynamicLossScaler(init_scale=8.0, growth_interval=2)
    a.update(torch.tensor(False))
    b = DynamicLossScaler()
    b.load_state_dict(a.state_dict())
    assert float(b.scale) == 8.0 and int(b.streak) == 1 and b.growth_interval == 2
    with pytest.raises(ValueError, match="backoff_factor"):
        DynamicLossScaler(backoff_factor=1.5)

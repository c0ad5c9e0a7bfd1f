"""The reductions' second stage: fixed-order sums over all rows and per tensor."""
from __future__ import annotations

import pytest
import torch
from fastngd.kernels import reduce as kreduce
from fastngd.kernels.pointer_table import build_table


@pytest.mark.parametrize("width", [2, 3])
def test_sum_rows_over_several_vector_steps(width: int) -> None:
    partials = torch.randn(3 * kreduce.ROWS_BLOCK + 5, width, dtype=torch.float64)
    out = torch.empty(width, dtype=torch.float64)
    kreduce.sum_rows(partials, out)
    torch.testing.assert_close(out, partials.sum(0), rtol=1e-13, atol=1e-12)
    again = torch.empty(width, dtype=torch.float64)
    kreduce.sum_rows(partials, again)
    assert torch.equal(out, again)


def test_segment_sums_write_each_tensor_at_its_index() -> None:
    numels, idx, chunk = [600 * 256, 256, 3 * 256], [4, 0, 2], 256
    tab = build_table({"F": [16, 32, 48]}, numels, idx, chunk, torch.device("cpu"))
    partials = torch.randn(tab.num_rows, 3, dtype=torch.float64)
    out = torch.full((5, 3), 7.0, dtype=torch.float64)
    kreduce.segment_sums(partials, tab, out)
    torch.testing.assert_close(out[4], partials[:600].sum(0), rtol=1e-13, atol=1e-12)
    torch.testing.assert_close(out[0], partials[600], rtol=0, atol=0)
    torch.testing.assert_close(out[2], partials[601:].sum(0), rtol=1e-13, atol=1e-12)
    assert torch.all(out[[1, 3]] == 7.0)  # rows of other tensors are left alone


def test_bad_partials_raise() -> None:
    with pytest.raises(TypeError, match="float64"):
        kreduce.sum_rows(torch.zeros(4, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="width"):
        kreduce.sum_rows(torch.zeros(4, 5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64))

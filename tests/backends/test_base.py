"""Both backends follow the notes of the backend interface (``fastngd/backends/base.py``):
a row's ``lr == 0`` test is made on the float64 ``hyper`` value (the smallest positive float64
stands for torch's ``lr = 0``), weights outside float32's normal range are applied without
overflow or underflow, and int8 retain codes are read at float32 precision whatever the
parameter dtype. The Triton backend runs in its interpreter; each bucket has kernel tensors
and a non-contiguous one (the Triton backend's fallback, the torch backend's whole-tensor
item)."""
from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import math

import pytest
import torch
from fastngd.kernels import naive
from torch import Tensor

from fastngd import NGDiffOptimizer
from fastngd.backends import Backend, TorchBackend, accumulation_dtype, state_names
from fastngd.backends.triton import TritonBackend

BACKENDS = {"torch": TorchBackend, "triton": TritonBackend}
TINY = math.ulp(0.0)
#: flat tensors for the kernels (one over a chunk of the Triton backend's default 16384 in
#: the interpreter: several programs), and a transposed view (non-contiguous).
SHAPES = [(3000,), (17000,), (40, 30)]


def _bucket(dtype: torch.dtype, seed: int, scale: float = 1.0) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = [(torch.randn(s, generator=g, dtype=torch.float64) * scale).to(dtype) for s in SHAPES]
    out[-1] = out[-1].t()
    return out


def _state(kind: str, params: list[Tensor]) -> list[list[Tensor]]:
    acc = accumulation_dtype(params[0].dtype)
    return [[torch.full(p.shape, 0.5 * (k + 1), dtype=acc) for p in params]
            for k, _ in enumerate(state_names(kind))]


def _hyper(lrs: list[float], wd: float = 0.0) -> Tensor:
    b1, b2 = 0.9, 0.99
    return torch.tensor([[lr, wd, b1, b2, 1e-8, 1 - b1**2, 1 - b2**2] for lr in lrs],
                        dtype=torch.float64)


def _rel(a: Tensor, b: Tensor) -> float:
    """Largest ``|a − b|`` relative to ``max |b|``."""
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]()


# --------------------------------------------------------------- lr == 0 on the float64 value
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["momentum", "adam"])
def test_the_smallest_positive_lr_keeps_theta_and_advances_the_state(
        backend: Backend, kind: str, dtype: torch.dtype) -> None:
    """``lr = ulp(0.0)`` (5e-324, zero in float32) is a live row: θ comes out bit for bit,
    the state advances as the reference's does; ``lr = 0`` leaves both untouched. Row 0 is
    live, row 1 tiny (a kernel tensor), row 2 tiny (the non-contiguous one)."""
    p, r, f = (_bucket(dtype, s) for s in (1, 2, 3))
    st = _state(kind, p)
    w = torch.tensor([[0.7, 0.4]] * 3, dtype=torch.float64)
    hyper = _hyper([1e-2, TINY, TINY])
    _, new_st, products = naive.step(p, r, f, st, hyper, w, kind)
    p0, st0 = [t.clone() for t in p], [[t.clone() for t in s] for s in st]
    got = backend.step(p, r, f, st, hyper, w, kind)
    assert not torch.equal(p[0], p0[0])
    assert all(torch.equal(p[i], p0[i]) for i in (1, 2))  # θ − 5e-324·u rounds to θ
    for k in range(len(st)):
        for i in range(3):
            assert not torch.equal(st[k][i], st0[k][i]), (k, i)  # the state advanced
            assert _rel(st[k][i], new_st[k][i]) < 1e-5, (k, i)
    assert _rel(got, products) < 1e-4
    # lr exactly 0: a skipped row; nothing read, nothing written
    p1, st1 = [t.clone() for t in p], [[t.clone() for t in s] for s in st]
    assert backend.step(p, r, f, st, _hyper([0.0] * 3), w, kind).tolist() == [0.0, 0.0]
    assert all(torch.equal(a, b) for a, b in zip(p, p1))
    assert all(torch.equal(a, b) for s, s1 in zip(st, st1) for a, b in zip(s, s1))


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_advance_with_the_smallest_positive_lr_writes_u(backend: Backend, kind: str) -> None:
    p, r, f = (_bucket(torch.float32, s) for s in (4, 5, 6))
    st = _state(kind, p)
    w = torch.tensor([[0.3, 0.9]] * 3, dtype=torch.float64)
    hyper = _hyper([TINY] * 3, wd=0.01)
    u_ref, st_ref, _ = naive.advance(p, r, f, st, hyper, w, kind)
    update, _, _ = backend.advance_and_backup(p, [t.clone() for t in r],
                                                   [t.clone() for t in f], st, hyper, w, kind)
    for a, b in zip(update, u_ref):
        assert b.abs().max() > 0 and _rel(a, b) < 1e-5
    for k in range(len(st)):
        for a, b in zip(st[k], st_ref[k]):
            assert _rel(a, b) < 1e-5


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_a_group_lr_set_to_zero_advances_adams_state_as_torch_does(name: str) -> None:
    """A scheduler that sets a group's lr to 0: θ stays, Adam's moments and step count
    advance exactly as ``torch.optim.Adam(lr=0)`` does with the same gradient."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(40, 7).t())  # non-contiguous: both paths
    b = torch.nn.Parameter(torch.randn(3000))
    opt = NGDiffOptimizer([w, b], lr=0.1, rule="gd", base="adam", autolr=False, backend=name)
    opt.param_groups[0]["lr"] = 0.0
    before = [w.detach().clone(), b.detach().clone()]
    stats = opt.step(lambda: (w.square().sum() + b.sin().sum()), lambda: (w.sum() + b.sum()))
    assert not bool(stats.skipped)
    assert torch.equal(w, before[0]) and torch.equal(b, before[1])
    twins = [torch.nn.Parameter(t.clone()) for t in before]
    ref = torch.optim.Adam(twins, lr=0.0)
    (twins[0].square().sum() + twins[1].sin().sum()).backward()
    ref.step()
    for p, q in zip((w, b), twins):
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(opt.state[p][key], ref.state[q][key], rtol=1e-6,
                                       atol=1e-12)
        assert float(opt.state[p]["step"]) == float(ref.state[q]["step"]) == 1.0


# --------------------------------------------------------------- weights outside float32's range
@pytest.mark.parametrize("storage", ["exact", "int8"])
@pytest.mark.parametrize("mode", ["linear", "sago"])
@pytest.mark.parametrize("kind", ["sgd", "adamw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weights_outside_float32s_range_are_applied_without_overflow(
        backend: Backend, dtype: torch.dtype, kind: str, mode: str, storage: str) -> None:
    """``w_R = 1e39`` (inf in float32) on a gradient of 1e-30 and ``w_F = 1e-41`` (a
    float32 subnormal with a few bits) on a gradient of 1e30: ``d`` is of order 1e9 and
    1e-11, and the step, the update of ``advance_and_backup`` and the products are the
    reference's, in both backends."""
    p = _bucket(dtype, 7)
    r, f = _bucket(dtype, 8, scale=1e-30), _bucket(dtype, 9, scale=1e30)
    stored = backend.store_retain(r, storage)
    st = _state(kind, p)
    w = torch.tensor([[1e39, 1e-41], [1e39, 1e-41], [3e38, 2e-40]], dtype=torch.float64)
    hyper = _hyper([1e-12, 1e-12, 1e-12], wd=0.01)
    new_p, _, products = naive.step(p, stored, f, st, hyper, w, kind, mode)
    u_ref, _, _ = naive.advance(p, stored, f, st, hyper, w, kind, mode)
    st2 = [[t.clone() for t in s] for s in st]
    p2 = [t.clone() for t in p]
    got = backend.step(p, stored, f, st, hyper, w, kind, mode)
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    for a, b in zip(p, new_p):
        assert bool(torch.isfinite(a).all()) and _rel(a, b) < tol
    assert bool(torch.isfinite(got).all()) and _rel(got, products) < 1e-4
    retain = stored if storage == "int8" else [t.clone() for t in stored]
    update, _, got2 = backend.advance_and_backup(p2, retain, [t.clone() for t in f], st2,
                                                 hyper, w, kind, mode)
    for a, b in zip(update, u_ref):
        assert bool(torch.isfinite(a).all()) and _rel(a, b) < tol
    assert _rel(got2, products) < 1e-4


# --------------------------------------------------------------- int8 codes of bf16 gradients
def test_int8_codes_of_bf16_gradients_are_read_at_float32_precision(backend: Backend) -> None:
    """Dequantized g_R stays float32 (as in the reference), not rounded to the parameters'
    bfloat16: the Gram scalars and the products agree with the reference to float32
    accuracy, which a bfloat16 rounding of g̃_R would miss by far."""
    r, f = _bucket(torch.bfloat16, 10), _bucket(torch.bfloat16, 11)
    q = backend.store_retain(r, "int8")
    ref = naive.gram(q, f, per_tensor=True)
    rounded = naive.gram([x.dequantize(torch.bfloat16) for x in q], f, per_tensor=True)
    scale = torch.stack([ref[:, 0], ref[:, 1], (ref[:, 0] * ref[:, 1]).sqrt()], 1)
    got = backend.gram(q, f, per_tensor=True)
    assert float(((got.double() - ref) / scale).abs().max()) < 2e-6
    assert float(((rounded - ref) / scale).abs().max()) > 1e-5  # the test can tell them apart
    p = _bucket(torch.bfloat16, 12)
    w = torch.tensor([[1.0, 0.25]] * 3, dtype=torch.float64)
    hyper = _hyper([1e-3] * 3)
    _, _, products = naive.step(p, q, f, [], hyper, w, "sgd")
    _, _, coarse = naive.step(p, [x.dequantize(torch.bfloat16) for x in q], f, [], hyper, w, "sgd")
    got = backend.step(p, q, f, [], hyper, w, "sgd")
    assert _rel(got, products) < 2e-6 < _rel(coarse, products)

"""The torch backend against a float64 per-tensor reference."""
from __future__ import annotations

import pytest
import torch

from fastngd.backends import TorchBackend, get_backend
from fastngd.backends.torch_backend import CHUNK

TOL = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 1e-2, torch.float16: 2e-3}
SHAPES = [(0,), (1,), (7,), (3, 5), (CHUNK + 3,), (2, 0), (4, 4, 3)]


def _tensors(dtype, shapes=SHAPES, seed=0, noncontig=False):
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in shapes:
        t = torch.randn(s, generator=g, dtype=torch.float64)
        if noncontig and len(s) == 2 and s[0] > 1 and s[1] > 1:
            t = torch.randn(s[::-1], generator=g, dtype=torch.float64).t()
        out.append(t.to(dtype))
    return out


def _ref_gram(r, f):
    return torch.tensor([sum(float((a.double() ** 2).sum()) for a in r),
                         sum(float((b.double() ** 2).sum()) for b in f),
                         sum(float((a.double() * b.double()).sum()) for a, b in zip(r, f))],
                        dtype=torch.float64)


def _ref_dir(r, f, w, sago):
    r, f = r.double(), f.double()
    if sago:
        return torch.where(r * f > 0, w[0] * r, -w[1] * f)
    return w[0] * r - w[1] * f


DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


@pytest.mark.parametrize("noncontig", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gram(dtype, noncontig) -> None:
    r, f = _tensors(dtype, seed=1, noncontig=noncontig), _tensors(dtype, seed=2)
    got = TorchBackend().gram(r, f)
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    ref = _ref_gram(r, f)
    assert torch.allclose(got.double(), ref, rtol=1e-5 if dtype != torch.float64 else 1e-12)


@pytest.mark.parametrize("sago", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_update(dtype, sago) -> None:
    p, r, f = (_tensors(dtype, seed=s, noncontig=(s == 4)) for s in (3, 4, 5))
    p0 = [t.clone() for t in p]
    n = len(p)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    lr = torch.tensor([0.1 * (i + 1) for i in range(n)], dtype=acc)
    lr[2] = 0.0  # never written
    w = torch.tensor([0.7, 0.3], dtype=acc)
    TorchBackend().update(p, r, f, lr, w, sago)
    for i in range(n):
        ref = p0[i].double() - lr[i].double() * _ref_dir(r[i], f[i], w.tolist(), sago)
        assert torch.allclose(p[i].double(), ref, rtol=TOL[dtype], atol=TOL[dtype]), i
    assert torch.equal(p[2], p0[2])


def test_lr_zero_leaves_nan_gradients_unread() -> None:
    p = [torch.ones(4)]
    TorchBackend().update(p, [torch.full((4,), float("nan"))], [torch.ones(4)],
                          torch.zeros(1), torch.tensor([1.0, 1.0]))
    assert torch.equal(p[0], torch.ones(4))


@pytest.mark.parametrize("sago", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_direction_backup_and_perturb_round_trip(dtype, sago) -> None:
    p, r, f = (_tensors(dtype, seed=s) for s in (6, 7, 8))
    p0, r0, f0 = ([t.clone() for t in x] for x in (p, r, f))
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    w = torch.tensor([0.4, 1.5], dtype=acc)
    be = TorchBackend()
    d, b = be.direction_and_backup(p, r, f, w, sago)
    assert all(x is y for x, y in zip(d, r)) and all(x is y for x, y in zip(b, f))
    for i in range(len(p)):
        assert torch.equal(b[i], p0[i])  # the backup is bit-exact
        assert torch.allclose(d[i].double(), _ref_dir(r0[i], f0[i], w.tolist(), sago),
                              rtol=TOL[dtype], atol=TOL[dtype])
    n = len(p)
    be.perturb(p, b, d, torch.full((n,), 0.25, dtype=acc))
    for i in range(n):
        ref = p0[i].double() + 0.25 * d[i].double()
        assert torch.allclose(p[i].double(), ref, rtol=TOL[dtype], atol=TOL[dtype])
    be.perturb(p, b, d, torch.full((n,), -0.25, dtype=acc))
    be.perturb(p, b, d, torch.zeros(n, dtype=acc))
    assert all(torch.equal(a, c) for a, c in zip(p, p0))  # restored bit-exactly


def test_many_tensors() -> None:
    r, f = _tensors(torch.float32, [(3,)] * 150, 9), _tensors(torch.float32, [(3,)] * 150, 10)
    assert torch.allclose(TorchBackend().gram(r, f).double(), _ref_gram(r, f), rtol=1e-5)


def test_get_backend() -> None:
    assert get_backend("auto", torch.device("cpu")).name == "torch"
    with pytest.raises(ValueError, match="valid"):
        get_backend("nope", torch.device("cpu"))


def test_sago_mask_does_not_underflow() -> None:
    """Tiny same-sign coordinates conflict even when their product underflows to 0."""
    r, f = torch.full((3,), 1e-30), torch.full((3,), 1e-30)
    p = [torch.zeros(3)]
    TorchBackend().update(p, [r], [f], torch.ones(1), torch.tensor([1.0, 1.0]), sago=True)
    assert torch.equal(p[0], -r)  # d = w_R·r: the retain gradient wins the conflict

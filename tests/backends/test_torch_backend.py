"""The torch backend against the float64 per-tensor reference (``fastngd.kernels.naive``).

Work items are made small here (a few KB) so that small tensors exercise every path: slices
of one tensor, groups of small tensors, whole non-contiguous tensors, converted chunks.
"""
from __future__ import annotations

import pytest
import torch
from fastngd.kernels import naive

from fastngd.backends import TorchBackend, _items, get_backend, state_names
from fastngd.backends import torch_backend as tb

TOL = {torch.float32: 1e-5, torch.float64: 1e-12, torch.bfloat16: 1e-2, torch.float16: 2e-3}
SHAPES = [(0,), (1,), (7,), (3, 5), (2, 0), (4, 4, 3), (5000,), (70, 30), (1500,)]


@pytest.fixture(autouse=True)
def small_items(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tb, "STREAM_BYTES", 1 << 14)
    monkeypatch.setattr(tb, "NATIVE_ITEM", 1 << 10)
    monkeypatch.setattr(tb, "CHUNK", 1 << 11)
    monkeypatch.setattr(tb, "CAST_CHUNK", 1 << 12)
    monkeypatch.setattr(tb, "COMPACT_CHUNK", 1 << 12)
    monkeypatch.setattr(_items, "SMALL", 64)
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
KINDS = ["sgd", "momentum", "adam", "adamw"]
MODES = ["linear", "sago", "sago_prefer_retain"]


def _tensors(dtype, shapes=SHAPES, seed=0, noncontig=False, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in shapes:
        t = torch.randn(s, generator=g, dtype=torch.float64) * scale
        if noncontig and len(s) == 2 and s[0] > 1 and s[1] > 1:
            t = torch.randn(s[::-1], generator=g, dtype=torch.float64).t() * scale
        out.append(t.to(dtype))
    return out


def _state(kind, params, seed=9):
    g = torch.Generator().manual_seed(seed)
    acc = torch.float64 if params[0].dtype == torch.float64 else torch.float32
    return [[torch.rand(p.shape, generator=g, dtype=torch.float64).to(acc) for p in params]
            for _ in state_names(kind)]


def _hyper(n, skip=(2,)):
    rows = [[0.1 * (i + 1), 0.01 * (i % 3), 0.9, 0.99, 1e-8 * (1 + i), 0.5, 0.3] for i in range(n)]
    for i in skip:
        rows[i][0] = 0.0
    return torch.tensor(rows, dtype=torch.float64)


def _weights(n, per_tensor=False):
    if per_tensor:
        return torch.tensor([[0.7 + 0.1 * i, 0.3 - 0.01 * i] for i in range(n)], dtype=torch.float64)
    return torch.tensor([[0.7, 0.3]] * n, dtype=torch.float64)


def _gram_close(got, ref, rtol):
    """Entry-wise, relative to the norms: ``rf`` is compared at the scale of ‖r‖‖f‖ (a dot
    product of nearly orthogonal vectors is small, its rounding is not)."""
    ref = ref.reshape(-1, 3)
    scale = torch.stack([ref[:, 0], ref[:, 1], (ref[:, 0] * ref[:, 1]).sqrt()], 1)
    return bool(((got.reshape(-1, 3) - ref).abs() <= rtol * scale + 1e-300).all())


def _close(a, b, dtype, what):
    for i, (x, y) in enumerate(zip(a, b)):
        assert torch.allclose(x.double(), y.double(), rtol=TOL[dtype], atol=TOL[dtype]), (what, i)


@pytest.mark.parametrize("storage", ["exact", "int8"])
@pytest.mark.parametrize("noncontig", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gram(dtype, noncontig, storage) -> None:
    r, f = _tensors(dtype, seed=1, noncontig=noncontig), _tensors(dtype, seed=2)
    be = TorchBackend()
    stored = be.store_retain(r, storage)
    got = be.gram(stored, f)
    assert got.dtype == torch.float64 and got.shape == (3,)
    rtol = 1e-5 if dtype != torch.float64 else 1e-12  # float32 partial sums
    assert _gram_close(got, naive.gram(stored, f), rtol)
    rows = be.gram(stored, f, per_tensor=True)
    assert rows.shape == (len(r), 3)
    assert _gram_close(rows, naive.gram(stored, f, per_tensor=True), rtol)


@pytest.mark.parametrize("dtype,scale", [(torch.float32, 1e30), (torch.float32, 1e-30),
                                         (torch.float32, 1e-43), (torch.bfloat16, 1e37),
                                         (torch.bfloat16, 1e-36), (torch.float64, 1e100)])
def test_gram_is_right_at_any_scale(dtype, scale) -> None:
    """Squares of float32 gradients ≳ 1e19 overflow float32, ≲ 1e-23 underflow it: the Gram
    scalars are right anyway (float32 subnormals included)."""
    r = _tensors(dtype, [(1000,), (5,), (300_000,)], seed=3, scale=scale)
    f = _tensors(dtype, [(1000,), (5,), (300_000,)], seed=4, scale=scale / 7)
    assert all(bool(torch.isfinite(x).all() and (x != 0).any()) for x in r + f)
    got = TorchBackend().gram(r, f)
    ref = naive.gram(r, f)
    assert bool(torch.isfinite(got).all()) and bool((got[:2] > 0).all())
    assert _gram_close(got, ref, 1e-5)


@pytest.mark.parametrize("storage", ["exact", "int8"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_step(dtype, kind, mode, storage) -> None:
    p, r, f = (_tensors(dtype, seed=s, noncontig=(s == 4)) for s in (3, 4, 5))
    be = TorchBackend()
    stored = be.store_retain(r, storage)
    st = _state(kind, p)
    n = len(p)
    hyper, w = _hyper(n), _weights(n, per_tensor=(kind == "adam"))
    new_p, new_st, products = naive.step(p, stored, f, st, hyper, w, kind, mode)
    p0 = [t.clone() for t in p]
    st0 = [[t.clone() for t in s] for s in st]
    got = be.step(p, stored, f, st, hyper, w, kind, mode)
    _close(p, new_p, dtype, "params")
    for k in range(len(st)):
        _close(st[k], new_st[k], torch.float32 if dtype != torch.float64 else dtype, "state")
        assert torch.equal(st[k][2], st0[k][2])  # a skipped row's state is untouched
    assert torch.equal(p[2], p0[2])
    assert got.dtype == torch.float64
    assert torch.allclose(got, products, rtol=1e-4 if dtype != torch.float64 else 1e-10)


def test_skipped_rows_read_nothing() -> None:
    """lr = 0: NaN gradients are not read, the parameter and the state stay."""
    p, m, v = [torch.ones(4)], [torch.zeros(4)], [torch.zeros(4)]
    hyper = torch.tensor([[0.0, 0.0, 0.9, 0.99, 1e-8, 0.1, 0.01]], dtype=torch.float64)
    products = TorchBackend().step(p, [torch.full((4,), float("nan"))], [torch.ones(4)],
                                   [m, v], hyper, torch.ones(1, 2, dtype=torch.float64), "adam")
    assert torch.equal(p[0], torch.ones(4)) and torch.equal(m[0], torch.zeros(4))
    assert products.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("storage", ["exact", "int8"])
@pytest.mark.parametrize("kind", ["sgd", "adamw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_advance_backup_and_perturb_round_trip(dtype, kind, storage) -> None:
    p, r, f = (_tensors(dtype, seed=s) for s in (6, 7, 8))
    be = TorchBackend()
    stored = be.store_retain(r, storage)
    st = _state(kind, p)
    n = len(p)
    hyper, w = _hyper(n), _weights(n)
    u_ref, st_ref, prod_ref = naive.advance(p, stored, f, st, hyper, w, kind, "sago")
    p0 = [t.clone() for t in p]
    update, backup, products = be.advance_and_backup(p, stored, f, st, hyper, w, kind, "sago")
    if storage == "exact":  # nothing allocated: u over g_R, θ over g_F
        assert all(x is y for x, y in zip(update, r)) and all(x is y for x, y in zip(backup, f))
    else:
        assert all(x is y for x, y in zip(update, f))
    assert all(torch.equal(b, q) for b, q in zip(backup, p0))  # bit-exact backup
    assert all(torch.equal(a, q) for a, q in zip(p, p0))  # θ itself unchanged
    _close(update, u_ref, dtype, "update")
    assert torch.equal(update[2], torch.zeros_like(update[2]))  # skipped row: u = 0
    for k in range(len(st)):
        _close(st[k], st_ref[k], torch.float32 if dtype != torch.float64 else dtype, "state")
    assert torch.allclose(products, prod_ref, rtol=1e-4)
    scale = torch.full((n,), 0.25, dtype=torch.float64)
    be.perturb(p, backup, update, scale)
    _close(p, naive.perturb(backup, update, scale.tolist()), dtype, "perturb")
    be.perturb(p, backup, update, -scale)
    be.perturb(p, backup, update, torch.zeros(n, dtype=torch.float64))
    assert all(torch.equal(a, c) for a, c in zip(p, p0))  # restored bit-exactly


def test_many_tensors_with_per_tensor_weights() -> None:
    """More than 110 small tensors (grouped into work items) with rows that differ."""
    shapes = [(3,)] * 150
    p, r, f = (_tensors(torch.float32, shapes, s) for s in (9, 10, 11))
    n = len(p)
    st = _state("momentum", p)
    hyper, w = _hyper(n, skip=()), _weights(n, per_tensor=True)
    new_p, new_st, products = naive.step(p, r, f, st, hyper, w, "momentum")
    got = TorchBackend().step(p, r, f, st, hyper, w, "momentum")
    _close(p, new_p, torch.float32, "params")
    _close(st[0], new_st[0], torch.float32, "state")
    assert torch.allclose(got, products, rtol=1e-5)
    assert _gram_close(TorchBackend().gram(r, f, per_tensor=True),
                       naive.gram(r, f, per_tensor=True), 1e-5)


def test_tiny_and_huge_weights_keep_their_precision() -> None:
    """Weights outside float32's normal range (1/‖g‖ of gradients near 1e-40, or 1e-41 next
    to a gradient of 1e30) are applied without rounding them to a subnormal or to inf."""
    r = [torch.tensor([1.5e-11, -3e-11])]
    f = [torch.tensor([1.5e30, 2e30])]
    w = torch.tensor([[1.0, 1e-41]], dtype=torch.float64)
    p = [torch.zeros(2)]
    hyper = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    TorchBackend().step(p, r, f, [], hyper, w, "sgd")
    expected = -(r[0].double() - 1e-41 * f[0].double())
    assert torch.allclose(p[0].double(), expected, rtol=1e-6)


def test_get_backend() -> None:
    assert get_backend("auto", torch.device("cpu")).name == "torch"
    with pytest.raises(ValueError, match="valid"):
        get_backend("nope", torch.device("cpu"))


def test_bad_arguments() -> None:
    be = TorchBackend()
    p = [torch.zeros(2)]
    with pytest.raises(ValueError, match="base"):
        be.step(p, p, p, [], torch.zeros(1, 7, dtype=torch.float64),
                torch.zeros(1, 2, dtype=torch.float64), "lion")
    with pytest.raises(ValueError, match="state"):
        be.step(p, p, p, [], torch.zeros(1, 7, dtype=torch.float64),
                torch.zeros(1, 2, dtype=torch.float64), "adam")
    with pytest.raises(ValueError, match="hyper"):
        be.step(p, p, p, [], torch.zeros(2, 7, dtype=torch.float64),
                torch.zeros(1, 2, dtype=torch.float64), "sgd")


def test_sago_mask_does_not_underflow() -> None:
    """Tiny same-sign coordinates conflict even when their product underflows to 0."""
    r, f = torch.full((3,), 1e-30), torch.full((3,), 1e-30)
    p = [torch.zeros(3)]
    hyper = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    TorchBackend().step(p, [r], [f], [], hyper, torch.ones(1, 2, dtype=torch.float64), "sgd", "sago")
    assert torch.equal(p[0], -r)  # d = w_R·r: the retain gradient wins the conflict


@pytest.mark.parametrize("advance", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_plain_sgd_takes_its_products_from_the_gram_pass(dtype, advance, monkeypatch) -> None:
    """After ``gram`` on the same buffers, the SGD step of a linear rule updates p from r and
    f directly and forms its products from the Gram rows: the same results as the reference;
    a buffer written in between (version counter) or replaced sends it down the general path."""
    p, r, f = (_tensors(dtype, seed=s) for s in (12, 13, 14))
    n = len(p)
    hyper, w = _hyper(n), _weights(n, per_tensor=True)
    hyper[:, 1] = 0.0  # no weight decay
    from fastngd.backends import _fused, native

    calls = []
    general, loop = _fused.advance, native.step_item
    monkeypatch.setattr(_fused, "advance", lambda *a: calls.append(1) or general(*a))
    monkeypatch.setattr(native, "step_item", lambda *a, **k: calls.append(1) or loop(*a, **k))
    for touch in (False, True):
        be = TorchBackend()
        pp, rr, ff = ([t.clone() for t in x] for x in (p, r, f))
        be.gram(rr, ff)
        if touch:
            rr[6].mul_(2.0)  # in place: the memoized rows no longer describe rr
        ref_p, _, ref_products = naive.step(pp, rr, ff, [], hyper, w, "sgd")
        ref_u, _, _ = naive.advance(pp, rr, ff, [], hyper, w, "sgd")
        if advance:
            u, b, products = be.advance_and_backup(pp, rr, ff, [], hyper, w, "sgd")
            _close(u, ref_u, dtype, "u")
            assert all(torch.equal(x, y) for x, y in zip(b, pp))
        else:
            products = be.step(pp, rr, ff, [], hyper, w, "sgd")
            _close(pp, ref_p, dtype, "params")
        assert torch.allclose(products, ref_products, rtol=1e-5 if dtype == torch.float32 else 1e-10)
        assert bool(calls) == touch  # the general path ran only when the rows were stale


@pytest.mark.parametrize("kernel", [True, False])
@pytest.mark.parametrize("kind", ["adam", "adamw"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_adam_with_and_without_torchs_fused_kernel(dtype, kind, kernel, monkeypatch) -> None:
    """Adam's moments through torch's fused CPU kernel (where it exists) or plain ops: both
    match the reference, step and advance alike."""
    from fastngd.backends import _fused

    monkeypatch.setattr(_fused, "USE_ADAM_KERNEL", kernel)
    p, r, f = (_tensors(dtype, seed=s) for s in (15, 16, 17))
    st = _state(kind, p)
    n = len(p)
    hyper, w = _hyper(n), _weights(n)
    new_p, new_st, products = naive.step(p, r, f, st, hyper, w, kind)
    u_ref, _, _ = naive.advance(p, r, f, st, hyper, w, kind)
    st2 = [[t.clone() for t in s] for s in st]
    p2 = [t.clone() for t in p]
    got = TorchBackend().step(p, r, f, st, hyper, w, kind)
    _close(p, new_p, dtype, "params")
    for k in range(2):
        _close(st[k], new_st[k], torch.float64 if dtype == torch.float64 else torch.float32, "state")
    assert torch.allclose(got, products, rtol=1e-4 if dtype != torch.float64 else 1e-10)
    u, _, _ = TorchBackend().advance_and_backup(p2, [t.clone() for t in r], [t.clone() for t in f],
                                                st2, hyper, w, kind)
    _close(u, u_ref, dtype, "update")


@pytest.mark.parametrize("scale", [1.0, 1e30, 1e-30])
@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_accelerator_scalars_stay_on_the_device(monkeypatch, kind, scale) -> None:
    """On accelerators the Gram rows and products are read on the host once per call, not
    once per dot product (each read would synchronise); the results are the reference's at
    every scale. Checked on the CPU by forcing that path and counting host reads."""
    from fastngd.backends import _fused

    monkeypatch.setattr(_fused, "deferred", lambda device: True)
    reads = {"float": 0, "tolist": 0}
    to_float, to_list = torch.Tensor.__float__, torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "__float__",
                        lambda t: reads.__setitem__("float", reads["float"] + 1) or to_float(t))
    monkeypatch.setattr(torch.Tensor, "tolist",
                        lambda t: reads.__setitem__("tolist", reads["tolist"] + 1) or to_list(t))
    shapes = [(1000,), (5,), (70, 30), (3000,)]
    r = _tensors(torch.float32, shapes, seed=3, scale=scale)
    f = _tensors(torch.float32, shapes, seed=4, scale=scale / 7)
    p = _tensors(torch.float32, shapes, seed=5)
    n = len(p)
    st = _state(kind, p)
    hyper = _hyper(n, skip=())
    w = torch.tensor([[1.0 / scale, 1.0 / scale]] * n, dtype=torch.float64)
    ref_gram = naive.gram(r, f, per_tensor=True)
    new_p, _, products = naive.step(p, r, f, st, hyper, w, kind)
    be = TorchBackend()
    reads.update(float=0, tolist=0)
    got = be.gram(r, f, per_tensor=True)
    assert reads == {"float": 0 if scale == 1.0 else reads["float"], "tolist": 1}
    assert _gram_close(got, ref_gram, 1e-5)
    reads.update(float=0, tolist=0)
    got = be.step(p, r, f, st, hyper, w, kind)
    assert reads == {"float": 0, "tolist": 2}  # hyper and weights: one read each
    _close(p, new_p, torch.float32, "params")
    assert torch.allclose(got, products, rtol=1e-4)

"""The native CPU loop (``fastngd.backends.native``) against the float64 reference, its build
and its fallback. CI machines have a C compiler: the loop is required here, not skipped."""
from __future__ import annotations

import math

import pytest
import torch
from fastngd.kernels import naive
from hypothesis import given, settings
from hypothesis import strategies as st

from fastngd.backends import TorchBackend, native

from .test_torch_backend import KINDS, _close, _hyper, _state, _tensors, _weights, small_items  # noqa: F401

SIZES = [1, 15, 16, 17, 1000]


@pytest.fixture(scope="module")
def dll():
    lib = native.library()
    assert lib is not None, ("the native loop must build on this machine (a C compiler is "
                             "needed, and FASTNGD_NATIVE must not be 0)")
    return lib


def _reference(kind, p, r, f, state, row, w):
    """Float64 transcription of the per-element formulas of fastngd.backends.base."""
    _, wd, b1, b2, eps, bc1, bc2 = row
    p, r, f = p.double(), r.double(), f.double()
    g = w[0] * r - w[1] * f
    new_state = []
    if kind in ("sgd", "momentum", "adam"):
        g = g + wd * p
    if kind == "sgd":
        u = g
    elif kind == "momentum":
        u = b1 * state[0].double() + g
        new_state = [u]
    else:
        m = b1 * state[0].double() + (1 - b1) * g
        v = b2 * state[1].double() + (1 - b2) * g * g
        u = (m / bc1) / (v.sqrt() / math.sqrt(bc2) + eps)
        if kind == "adamw":
            u = u + wd * p
        new_state = [m, v]
    return u, new_state, (float(r @ u), float(f @ u))


def _operands(n, kind, seed):
    g = torch.Generator().manual_seed(seed)
    p, r, f = (torch.randn(n, generator=g) for _ in range(3))
    state = [torch.rand(n, generator=g) for _ in range({"sgd": 0, "momentum": 1}.get(kind, 2))]
    return p, r, f, state


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("advance", [False, True])
def test_item_matches_the_float64_reference(dll, kind, n, advance) -> None:
    p, r, f, state = _operands(n, kind, seed=n)
    row, w = (0.05, 0.01, 0.9, 0.99, 1e-8, 0.4, 0.2), (0.7, 0.3)
    u_ref, st_ref, dots_ref = _reference(kind, p, r, f, state, row, w)
    p0 = p.clone()
    if advance:  # u over r, θ over f: the aliases of advance_and_backup
        dots = native.step_item(dll, kind, p, r, f, state, row, w, u_out=r, backup_out=f)
        assert torch.allclose(r.double(), u_ref, rtol=1e-5, atol=1e-6)
        assert torch.equal(f, p0) and torch.equal(p, p0)
    else:
        dots = native.step_item(dll, kind, p, r, f, state, row, w)
        assert torch.allclose(p.double(), p0.double() - row[0] * u_ref, rtol=1e-5, atol=1e-6)
    for got, ref in zip(state, st_ref):
        assert torch.allclose(got.double(), ref, rtol=1e-5, atol=1e-6)
    scale = float(u_ref.norm() * (r.norm() + f.norm())) + 1e-30
    for got, ref in zip(dots, dots_ref):
        assert abs(got - ref) <= 1e-5 * scale


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), kind=st.sampled_from(KINDS), seed=st.integers(0, 10**6),
       w_r=st.floats(1e-20, 1e15), w_f=st.floats(1e-20, 1e15),
       beta1=st.floats(0.0, 0.999), beta2=st.floats(0.0, 0.9999), t=st.integers(1, 1000))
def test_item_matches_the_reference_for_any_hyper_parameters(dll, n, kind, seed, w_r, w_f,
                                                              beta1, beta2, t) -> None:
    """Weights span 35 orders of magnitude; d² stays a float32 number (the second moment is
    float32 state, as in ``torch.optim.Adam``: beyond that it is infinite there too)."""
    p, r, f, state = _operands(n, kind, seed)
    row = (1e-3, 0.01, beta1, beta2, 1e-8, 1 - beta1**t, 1 - beta2**t)
    u_ref, _, dots_ref = _reference(kind, p, r, f, state, row, (w_r, w_f))
    u = torch.empty(n)
    dots = native.step_item(dll, kind, p, r, f, state, row, (w_r, w_f), u_out=u)
    assert torch.allclose(u.double(), u_ref, rtol=1e-4, atol=1e-6 * float(u_ref.abs().max()))
    scale = float(u_ref.norm() * (r.norm() + f.norm()))
    assert all(abs(a - b) <= 1e-4 * scale for a, b in zip(dots, dots_ref))


@pytest.mark.parametrize("n", SIZES + [100_003])
def test_gram_item_matches_the_float64_reference(dll, n) -> None:
    _, r, f, _ = _operands(n, "sgd", seed=n)
    got = native.gram_item(dll, r, f)
    r64, f64 = r.double(), f.double()
    ref = (float(r64 @ r64), float(f64 @ f64), float(r64 @ f64))
    scale = float(r64.norm() * f64.norm())
    assert abs(got[0] - ref[0]) <= 1e-5 * ref[0] and abs(got[1] - ref[1]) <= 1e-5 * ref[1]
    assert abs(got[2] - ref[2]) <= 1e-5 * scale


def test_applies_only_to_what_the_loop_handles() -> None:
    x = torch.zeros(8)
    assert native.applies(x, [x.clone(), x.clone()], [0.1, 0.0, 1e-8, 1e30])
    assert not native.applies(x, [x.clone()], [1e-41])  # a float32 subnormal weight
    assert not native.applies(x, [x.clone()], [1e39])  # inf in float32
    assert not native.applies(x, [x.double()], [1.0])
    assert not native.applies(x, [torch.zeros(4, 4).t()[0]], [1.0])  # not contiguous
    assert not native.applies(x, [torch.zeros(9)], [1.0])


@pytest.mark.parametrize("storage", ["exact", "int8"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("use_native", ["1", "0"])
def test_backend_with_and_without_the_loop(monkeypatch, use_native, dtype, kind, storage) -> None:
    """The backend's step and advance_and_backup give the reference's results through the
    loop and through the torch-op path alike."""
    monkeypatch.setenv("FASTNGD_NATIVE", use_native)
    calls: list[int] = []
    loop = native.step_item
    monkeypatch.setattr(native, "step_item", lambda *a, **k: calls.append(1) or loop(*a, **k))
    def fresh():
        return [_tensors(dtype, seed=s) for s in (3, 4, 5)]

    p, r, f = fresh()
    be = TorchBackend()
    state, n = _state(kind, p), len(p)
    hyper, w = _hyper(n), _weights(n, per_tensor=True)
    new_p, new_st, products = naive.step(p, be.store_retain(r, storage), f, state, hyper, w, kind)
    u_ref, _, _ = naive.advance(p, be.store_retain(r, storage), f, state, hyper, w, kind)
    adv_state = [[t.clone() for t in s] for s in state]
    update, backup, adv_products = be.advance_and_backup(p, be.store_retain(r, storage), f,
                                                         adv_state, hyper, w, kind)
    _close(update, u_ref, dtype, "update")
    assert all(torch.equal(b, q) for b, q in zip(backup, fresh()[0]))  # θ, bit-exact
    assert torch.allclose(adv_products, products, rtol=1e-4)
    p, r, f = fresh()
    got = be.step(p, be.store_retain(r, storage), f, state, hyper, w, kind)
    _close(p, new_p, dtype, "params")
    for k in range(len(state)):
        _close(state[k], new_st[k], torch.float32, "state")
    assert torch.allclose(got, products, rtol=1e-4)
    assert bool(calls) == (use_native == "1")


def test_build_is_cached(tmp_path) -> None:
    first = native.build(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert native.build(tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert [x.name for x in tmp_path.iterdir()] == [first.name]  # no temporary left


def test_no_compiler_falls_back_with_one_warning(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("FASTNGD_CACHE", str(tmp_path))
    monkeypatch.setenv("FASTNGD_NATIVE", "auto")
    with pytest.warns(native.NativeBuildWarning, match="torch-op path"):
        assert native.library() is None
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.library() is None  # warned once
    monkeypatch.setenv("FASTNGD_NATIVE", "1")
    monkeypatch.setattr(native, "_loaded", {})
    with pytest.raises(RuntimeError, match="FASTNGD_NATIVE=1"):
        native.library()
    monkeypatch.setenv("FASTNGD_NATIVE", "0")
    assert native.library() is None
    monkeypatch.setenv("FASTNGD_NATIVE", "yes")
    with pytest.raises(ValueError, match="auto, 0 or 1"):
        native.library()

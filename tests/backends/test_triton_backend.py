"""TritonBackend (CPU, Triton interpreter) against TorchBackend and the float64 reference."""
from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import math
import subprocess
import sys

import pytest
import torch
from fastngd.kernels import launch_count, naive, reset_launch_count
from torch import Tensor

from fastngd.backends import TorchBackend, get_backend
from fastngd.backends.triton import TritonBackend, require_triton
from fastngd.compact import QuantizedTensor

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
TOL = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.float64: {"rtol": 1e-12, "atol": 1e-12},
    torch.bfloat16: {"rtol": 1.6e-2, "atol": 1.6e-2},
    torch.float16: {"rtol": 2e-3, "atol": 2e-3},
}
SHAPES = [(700,), (0,), (20, 30), (1,), (513,)]


def _bucket(dtype: torch.dtype, seed: int, shapes=SHAPES) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in shapes]


def _triple(dtype: torch.dtype, seed: int = 0, shapes=SHAPES):
    return _bucket(dtype, seed, shapes), _bucket(dtype, seed + 1, shapes), _bucket(dtype, seed + 2, shapes)


def _clone(ts: list[Tensor]) -> list[Tensor]:
    return [t.clone() for t in ts]


def _close(a: Tensor, b: Tensor, dtype: torch.dtype, scale: float = 1.0) -> None:
    tol = TOL[dtype]
    torch.testing.assert_close(a.double(), b.double(), rtol=tol["rtol"] * scale,
                               atol=tol["atol"] * scale)


@pytest.fixture(scope="module")
def tb() -> TritonBackend:
    return TritonBackend(chunk_size=256, block_size=64)


def test_get_backend_resolves_triton() -> None:
    assert isinstance(get_backend("triton", torch.device("cpu")), TritonBackend)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("storage", ["exact", "int8"])
def test_gram_matches_torch_backend(tb: TritonBackend, dtype: torch.dtype, storage: str) -> None:
    _, r, f = _triple(dtype)
    got = tb.gram(tb.store_retain(r, storage), f)
    want = TorchBackend().gram(TorchBackend().store_retain(r, storage), f)
    assert got.dtype == want.dtype and got.shape == (3,)
    # Torch dequantizes into the parameter dtype first; the kernels keep float32 codes·scale.
    lossy = storage == "int8" and dtype in (torch.bfloat16, torch.float16)
    bound = 2e-3 if lossy else (1e-12 if dtype == torch.float64 else 1e-6)
    rel = (got.double() - want.double()).abs().max() / want.double().abs().max()
    assert rel <= bound


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("storage", ["exact", "int8"])
@pytest.mark.parametrize("sago", [False, True])
def test_update_matches_torch_backend(tb: TritonBackend, dtype: torch.dtype, storage: str,
                                      sago: bool) -> None:
    p, r, f = _triple(dtype, 3)
    lr = torch.tensor([0.1, 0.2, 0.3, 0.0, 1.5])
    w = torch.tensor([0.8, 0.6])
    p_t, p_ref = _clone(p), _clone(p)
    tb.update(p_t, tb.store_retain(r, storage), f, lr, w, sago)
    torch_stored = TorchBackend().store_retain(r, storage)
    TorchBackend().update(p_ref, torch_stored, f, lr, w, sago)
    expected = naive.update(p, torch_stored, f, lr.tolist(), w.tolist(), sago)
    for a, b, e in zip(p_t, p_ref, expected):
        _close(a, b, dtype, scale=2.0)
        _close(a, e, dtype)
    assert torch.equal(p_t[3], p[3])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("storage", ["exact", "int8"])
def test_gen_cycle_matches_torch_and_restores_bit_exactly(tb: TritonBackend, dtype: torch.dtype,
                                                         storage: str) -> None:
    p, r, f = _triple(dtype, 6)
    w = torch.tensor([0.5, 0.25])
    n = len(p)
    outs = {}
    for name, be in (("triton", tb), ("torch", TorchBackend())):
        pp, rr, ff = _clone(p), _clone(r), _clone(f)
        d, b = be.direction_and_backup(pp, be.store_retain(rr, storage), ff, w)
        if storage == "exact":
            assert all(x is y for x, y in zip(d, rr)) and all(x is y for x, y in zip(b, ff))
        else:
            assert all(x is y for x, y in zip(d, ff))
        assert all(torch.equal(x, y) for x, y in zip(b, p))
        xi = torch.full((n,), 0.05)
        be.perturb(pp, b, d, -xi)
        minus = _clone(pp)
        be.perturb(pp, b, d, xi)
        be.perturb(pp, b, d, torch.zeros(n))
        assert all(torch.equal(x, y) for x, y in zip(pp, p))  # bit-exact restore
        be.perturb(pp, b, d, torch.full((n,), -0.3))
        outs[name] = (_clone(d), minus, _clone(pp))
    for k in range(3):
        for a, b in zip(outs["triton"][k], outs["torch"][k]):
            _close(a, b, dtype, scale=1.0 if storage == "exact" else 2.0)


def _noncontig(ts: list[Tensor]) -> list[Tensor]:
    """Same values, but the 2-D tensor becomes a transposed (non-contiguous) view."""
    out = []
    for t in ts:
        out.append(t.t().contiguous().t() if t.dim() == 2 else t)
    assert not out[2].is_contiguous()
    return out


@pytest.mark.parametrize("storage", ["exact", "int8"])
def test_non_contiguous_tensors_use_the_fallback(tb: TritonBackend, storage: str) -> None:
    p, r, f = _triple(torch.float32, 9)
    p_nc, r_nc, f_nc = _noncontig(_clone(p)), _noncontig(_clone(r)), _noncontig(_clone(f))
    lr = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])
    w = torch.tensor([1.0, 0.5])
    stored = tb.store_retain(r_nc, storage)
    g = tb.gram(stored, f_nc)
    torch.testing.assert_close(g, tb.gram(tb.store_retain(r, storage), f), rtol=1e-5, atol=1e-4)
    tb.update(p_nc, stored, f_nc, lr, w, sago=True)
    p_c = _clone(p)
    tb.update(p_c, tb.store_retain(r, storage), f, lr, w, sago=True)
    for a, b in zip(p_nc, p_c):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert not p_nc[2].is_contiguous()  # updated in place, layout kept
    d, b = tb.direction_and_backup(p_nc, stored, f_nc, w)
    assert all(torch.equal(x, y) for x, y in zip(b, p_nc))
    tb.perturb(p_nc, b, d, torch.full((5,), 0.1))
    tb.perturb(p_nc, b, d, torch.zeros(5))
    assert all(torch.equal(x, y) for x, y in zip(p_nc, b))


def test_bucket_mixing_codes_and_exact_tensors(tb: TritonBackend) -> None:
    """A parameter without a retain gradient gets exact zeros beside codes of the others."""
    p, r, f = _triple(torch.float32, 30)
    mixed: list[object] = list(tb.store_retain(r, "int8"))
    mixed[0] = torch.zeros_like(r[0])
    mixed[2] = r[2]
    torch.testing.assert_close(tb.gram(mixed, f), TorchBackend().gram(mixed, f), rtol=1e-6, atol=1e-4)
    lr, w = torch.full((5,), 0.3), torch.tensor([0.5, 0.5])
    a, b = _clone(p), _clone(p)
    tb.update(a, mixed, f, lr, w, sago=True)
    TorchBackend().update(b, mixed, f, lr, w, sago=True)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)
    d, bk = tb.direction_and_backup(a, mixed, _clone(f), w)
    assert all(torch.equal(x, y) for x, y in zip(bk, a))
    for i, (x, rr, ff) in enumerate(zip(d, mixed, f)):
        torch.testing.assert_close(x.double(), naive.direction(rr, ff, (0.5, 0.5)), rtol=1e-6, atol=1e-6)


def test_zero_lr_never_writes_even_with_nan_gradients(tb: TritonBackend) -> None:
    p, r, f = _triple(torch.float32, 12)
    p = _noncontig(p)  # the fallback path too
    for t in r:
        t.fill_(math.nan)
    p0 = _clone(p)
    tb.update(p, r, f, torch.zeros(5), torch.tensor([1.0, 1.0]), sago=True)
    assert all(torch.equal(a, b) for a, b in zip(p, p0))


def test_bitwise_deterministic(tb: TritonBackend) -> None:
    p, r, f = _triple(torch.float32, 15)
    lr, w = torch.full((5,), 0.2), torch.tensor([0.3, 0.7])
    assert torch.equal(tb.gram(r, f), tb.gram(r, f))
    a, b = _clone(p), _clone(p)
    tb.update(a, r, f, lr, w)
    tb.update(b, r, f, lr, w)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_pointer_table_rebuilt_only_when_an_address_changes() -> None:
    be = TritonBackend(chunk_size=256, block_size=128)
    p, r, f = _triple(torch.float32, 18)
    lr, w = torch.full((5,), 0.1), torch.tensor([1.0, 1.0])
    be.update(p, r, f, lr, w)
    builds = be.cache_info().builds
    for _ in range(3):
        be.update(p, r, f, lr, w)
    assert be.cache_info().builds == builds
    f[0] = f[0].clone()  # a new buffer for one tensor
    be.update(p, r, f, lr, w)
    assert be.cache_info().builds == builds + 1
    be.update(p, r, f, lr, w)
    assert be.cache_info().builds == builds + 1


def test_launches_per_call_are_constant(tb: TritonBackend) -> None:
    counts = []
    for n in (3, 40):
        p, r, f = _triple(torch.float32, 21, shapes=[(300,)] * n)
        reset_launch_count()
        tb.gram(r, f)
        tb.update(p, r, f, torch.full((n,), 0.1), torch.tensor([1.0, 1.0]))
        counts.append(launch_count())
    assert counts == [3, 3]


def test_bad_buckets_raise_clear_errors(tb: TritonBackend) -> None:
    p, r, f = _triple(torch.float32, 24)
    lr, w = torch.full((5,), 0.1), torch.tensor([1.0, 1.0])
    with pytest.raises(ValueError, match="one device and dtype"):
        tb.gram(r, [t.double() for t in f])
    with pytest.raises(ValueError, match="shape"):
        tb.gram(r, [f[0].view(7, 100)] + f[1:])
    with pytest.raises(ValueError, match="entries"):
        tb.gram(r[:-1], f)
    with pytest.raises(ValueError, match="lr must have shape"):
        tb.update(p, r, f, torch.full((4,), 0.1), w)
    with pytest.raises(ValueError, match="weights must have shape"):
        tb.update(p, r, f, lr, torch.ones(3))
    with pytest.raises(TypeError, match="lr must be a device tensor"):
        tb.update(p, r, f, [0.1] * 5, w)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown retain storage"):
        tb.store_retain(r, "int4")
    with pytest.raises(ValueError, match="at least one"):
        tb.gram([], [])
    with pytest.raises(RuntimeError, match="backend='torch'"):
        tb.gram([torch.ones(4, device="meta")], [torch.ones(4, device="meta")])
    with pytest.raises(ValueError, match="chunk_size"):
        TritonBackend(chunk_size=300, block_size=64)
    with pytest.raises(ValueError, match="block_size"):
        TritonBackend(chunk_size=256, block_size=48)


def test_store_retain_int8_is_compact_and_bit_identical(tb: TritonBackend) -> None:
    _, r, _ = _triple(torch.float32, 27)
    got = tb.store_retain(r, "int8")
    want = TorchBackend().store_retain(r, "int8")
    for a, b in zip(got, want):
        assert isinstance(a, QuantizedTensor) and a.shape == b.shape
        assert torch.equal(a.codes, b.codes) and torch.equal(a.absmax, b.absmax)
    total = sum(t.numel() * 4 for t in r)
    assert sum(q.nbytes for q in got) <= 0.27 * total


def test_missing_triton_raises_an_import_error_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "triton", None)
    with pytest.raises(ImportError, match="backend='torch'"):
        require_triton()
    with pytest.raises(ImportError, match="pip install triton"):
        TritonBackend()


def test_cpu_tensors_without_the_interpreter_raise_naming_the_fix() -> None:
    code = (
        "import torch\n"
        "from fastngd.backends.triton import TritonBackend\n"
        "be = TritonBackend()\n"
        "try:\n"
        "    be.check_device(torch.device('cpu'))\n"
        "except RuntimeError as e:\n"
        "    print('EARLY', e)\n"
        "try:\n"
        "    be.gram([torch.ones(4)], [torch.ones(4)])\n"
        "except RuntimeError as e:\n"
        "    print('ERR', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "EARLY" in out.stdout and "ERR" in out.stdout and "TRITON_INTERPRET=1" in out.stdout
    assert "backend='torch'" in out.stdout


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compact_lemma4_and_direction_error(tb: TritonBackend, seed: int) -> None:
    """NGDiff through the compact kernels: Lemma 4 holds for the stored g̃_R (norms from the
    codes) and the direction is within 2 % (L2) of the exact one."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(900,), (40, 30)]
    heavy = [torch.randn(s, generator=g) * torch.exp(2 * torch.randn(s, generator=g)) for s in shapes]
    noise = [torch.randn(s, generator=g) for s in shapes]
    r = heavy
    f = [-0.9 * a / a.norm() + 0.1 * b / b.norm() for a, b in zip(heavy, noise)]  # conflicting
    p = [torch.zeros(s) for s in shapes]
    stored = tb.store_retain(r, "int8")
    rr, ff, _ = tb.gram(stored, f).tolist()
    w = torch.tensor([rr ** -0.5, ff ** -0.5])
    d, _ = tb.direction_and_backup(p, stored, [t.clone() for t in f], w)
    rq = torch.cat([q.dequantize(torch.float32).reshape(-1) for q in stored]).double()
    d64 = torch.cat([t.reshape(-1) for t in d]).double()
    f64 = torch.cat([t.reshape(-1) for t in f]).double()
    assert (rq @ d64).item() >= 0.0 >= (f64 @ d64).item()
    r64 = torch.cat([t.reshape(-1) for t in r]).double()
    exact = r64 / r64.norm() - f64 / f64.norm()
    assert ((d64 - exact).norm() / exact.norm()).item() <= 0.02

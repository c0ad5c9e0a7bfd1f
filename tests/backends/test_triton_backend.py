"""TritonBackend (CPU, Triton interpreter) against the float64 reference: buckets mixing
kernel tensors, non-contiguous (fallback) ones, zero-size ones and skipped rows."""
from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import math
import subprocess
import sys
from itertools import chain

import pytest
import torch
from fastngd.kernels import launch_count, naive, reset_launch_count
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from fastngd.backends import get_backend
from fastngd.backends.base import accumulation_dtype, state_names
from fastngd.backends.triton import TritonBackend, require_triton
from fastngd.compact import QuantizedTensor, quantize_blockwise

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
KINDS = ["sgd", "momentum", "adam", "adamw"]
MODES = ["linear", "sago", "sago_prefer_retain"]
TOL = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.float64: {"rtol": 1e-12, "atol": 1e-12},
    torch.bfloat16: {"rtol": 1.6e-2, "atol": 1.6e-2},
    torch.float16: {"rtol": 2e-3, "atol": 2e-3},
}
#: a kernel tensor of two chunks, a zero-size one, a non-contiguous one (fallback), a
#: 1-element one (its row is skipped: lr = 0), a small one.
SHAPES = [(300,), (0,), (15, 20), (1,), (45,)]
NONCONTIG, SKIPPED = 2, 3


def _bucket(dtype: torch.dtype, seed: int, shapes=SHAPES) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in shapes]
    return [t.t().contiguous().t() if t.dim() == 2 else t for t in out]  # 2-D: transposed view


def _clone(ts):
    return [t.clone() if isinstance(t, Tensor) else t for t in ts]


def _bits(a, b) -> bool:
    return all(torch.equal(x.contiguous().view(torch.uint8), y.contiguous().view(torch.uint8))
               for x, y in zip(a, b))


def _state(kind: str, params, seed: int) -> list[list[Tensor]]:
    acc = accumulation_dtype(params[0].dtype)
    cols = [_bucket(torch.float64, seed + k, [tuple(p.shape) for p in params])
            for k, _ in enumerate(state_names(kind))]
    return [[(t.abs() if k == 1 else 0.1 * t).to(acc) for t in col] for k, col in enumerate(cols)]


def _hyper(n: int, skip=(SKIPPED,)) -> Tensor:
    rows = [[0.0 if i in skip else 0.1 * (i + 1), 0.02 * ((i + 1) % 3), 0.85, 0.99, 1e-6,
             1 - 0.85**4, 1 - 0.99**4] for i in range(n)]
    return torch.tensor(rows, dtype=torch.float64)


def _weights(n: int) -> Tensor:
    return torch.tensor([[0.8 + 0.1 * i, 0.6 - 0.05 * i] for i in range(n)], dtype=torch.float64)


def _case(kind: str, dtype: torch.dtype, storage: str, tb: TritonBackend, seed: int = 0):
    p, r, f = (_bucket(dtype, seed + k) for k in range(3))
    return (p, tb.store_retain(r, storage), f, _state(kind, p, seed + 3), _hyper(len(p)),
            _weights(len(p)))


def _close(a: Tensor, b: Tensor, dtype: torch.dtype) -> None:
    torch.testing.assert_close(a.double(), b.double(), **TOL[dtype])


@pytest.fixture(scope="module")
def tb() -> TritonBackend:
    return TritonBackend(chunk_size=256)


def test_get_backend_resolves_triton() -> None:
    assert isinstance(get_backend("triton", torch.device("cpu")), TritonBackend)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("storage", ["exact", "int8"])
def test_gram_matches_reference(tb: TritonBackend, dtype: torch.dtype, storage: str) -> None:
    _, r, f = (_bucket(dtype, k) for k in range(3))
    stored = tb.store_retain(r, storage)
    got, rows = tb.gram(stored, f), tb.gram(stored, f, per_tensor=True)
    assert got.dtype == rows.dtype == torch.float64 and got.shape == (3,) and rows.shape == (5, 3)
    want = naive.gram(stored, f, per_tensor=True)
    torch.testing.assert_close(rows, want, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(got, want.sum(0), rtol=1e-13, atol=1e-13)
    assert torch.equal(rows[1], torch.zeros(3, dtype=torch.float64))  # the zero-size tensor


@pytest.mark.parametrize("storage", ["exact", "int8"])
@pytest.mark.parametrize("kind", KINDS)
def test_step_matches_reference(tb: TritonBackend, kind: str, storage: str) -> None:
    """Kernel, fallback, zero-size and skipped tensors in one bucket; bf16 parameters with
    float32 state."""
    for dtype, mode in ((torch.float32, MODES[KINDS.index(kind) % 3]),
                        (torch.bfloat16, MODES[(KINDS.index(kind) + 1) % 3])):
        p, stored, f, state, hyper, w = _case(kind, dtype, storage, tb)
        want_p, want_state, want_prod = naive.step(p, stored, f, state, hyper, w, kind, mode)
        p0, s0 = _clone(p), [_clone(c) for c in state]
        prod = tb.step(p, stored, f, state, hyper, w, kind, mode)
        for i in range(len(p)):
            _close(p[i], want_p[i], dtype)
            for col, want in zip(state, want_state):
                _close(col[i], want[i], torch.float32)
        assert not p[NONCONTIG].is_contiguous()  # updated in place, layout kept
        assert _bits([p[SKIPPED]] + [c[SKIPPED] for c in state],
                     [p0[SKIPPED]] + [c[SKIPPED] for c in s0])
        torch.testing.assert_close(prod, want_prod, rtol=1e-5, atol=1e-5 * want_prod.abs().max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("storage", ["exact", "int8"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_fallback_matches_reference(tb: TritonBackend, kind: str, mode: str, storage: str,
                                    dtype: torch.dtype) -> None:
    """Every tensor non-contiguous: the PyTorch path alone, step then advance."""
    shapes = [(20, 15), (3, 7), (2, 2)]
    p, r, f = (_bucket(dtype, k, shapes) for k in range(3))
    stored = tb.store_retain(r, storage)
    state, hyper, w = _state(kind, p, 5), _hyper(3, skip=(1,)), _weights(3)
    want_p, want_state, want_prod = naive.step(p, stored, f, state, hyper, w, kind, mode)
    want_u, _, _ = naive.advance(p, stored, f, state, hyper, w, kind, mode)
    reset_launch_count()
    p1, s1 = _clone(p), [_clone(c) for c in state]
    prod = tb.step(p1, stored, f, s1, hyper, w, kind, mode)
    for i in (0, 2):
        _close(p1[i], want_p[i], dtype)
        for col, want in zip(s1, want_state):
            _close(col[i], want[i], accumulation_dtype(dtype))
    torch.testing.assert_close(prod, want_prod, rtol=1e-5, atol=1e-6 * want_prod.abs().max())
    u, b, _ = tb.advance_and_backup(p, stored, f, state, hyper, w, kind, mode)
    assert launch_count() == 0
    assert _bits(b, p)
    for i in (0, 2):
        _close(u[i], want_u[i], dtype)
    assert torch.all(u[1] == 0)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("kind", KINDS)
def test_zero_weight_decay_never_reads_the_parameter(tb: TritonBackend, kind: str) -> None:
    """As torch does, no ``wd·p`` term at all when ``wd == 0``: an infinite parameter gives a
    finite update and state (kernel and fallback tensors)."""
    p, r, f = (_bucket(torch.float32, k, [(300,), (15, 20)]) for k in range(3))
    p[0][7] = math.inf
    p[1][3, 4] = -math.inf
    state, hyper, w = _state(kind, p, 1), _hyper(2, skip=()), _weights(2)
    hyper[:, 1] = 0.0
    u, _, prod = tb.advance_and_backup(p, r, f, state, hyper, w, kind, "linear")
    assert all(torch.isfinite(t).all() for t in chain(u, *state)) and torch.isfinite(prod).all()


@pytest.mark.parametrize("storage", ["exact", "int8"])
def test_advance_and_backup_buffers_and_bit_exact_restore(tb: TritonBackend, storage: str) -> None:
    p, stored, f, state, hyper, w = _case("adam", torch.float32, storage, tb, seed=6)
    p0, s0 = _clone(p), [_clone(c) for c in state]
    want_u, want_state, want_prod = naive.advance(p, stored, f, state, hyper, w, "adam", "sago")
    u, b, prod = tb.advance_and_backup(p, stored, f, state, hyper, w, "adam", "sago")
    if storage == "exact":  # no allocation: u over g_R, θ over g_F
        assert all(x is y for x, y in zip(u, stored)) and all(x is y for x, y in zip(b, f))
    else:  # u over g_F, fresh backups
        assert all(x is y for x, y in zip(u, f)) and not any(x is y for x, y in zip(b, f))
    assert _bits(p, p0) and _bits(b, p0)
    for i in range(len(p)):
        _close(u[i], want_u[i], torch.float32)
        for col, want in zip(state, want_state):
            _close(col[i], want[i], torch.float32)
    assert torch.all(u[SKIPPED] == 0) and _bits([c[SKIPPED] for c in state],
                                                [c[SKIPPED] for c in s0])
    torch.testing.assert_close(prod, want_prod, rtol=1e-5, atol=1e-5 * want_prod.abs().max())
    n = len(p)
    tb.perturb(p, b, u, torch.full((n,), -0.05, dtype=torch.float64))
    for i in range(n):
        _close(p[i], p0[i].double() - 0.05 * want_u[i], torch.float32)
    tb.perturb(p, b, u, torch.zeros(n, dtype=torch.float64))
    assert _bits(p, p0)  # bit-exact restore, the fallback tensor included


def test_bitwise_deterministic(tb: TritonBackend) -> None:
    runs = []
    for _ in range(2):
        p, stored, f, state, hyper, w = _case("adamw", torch.float32, "exact", tb, seed=9)
        g = tb.gram(stored, f, per_tensor=True)
        prod = tb.step(p, stored, f, state, hyper, w, "adamw", "sago")
        runs.append([g, prod, *p, *chain(*state)])
    assert _bits(runs[0], runs[1])


def test_pointer_table_rebuilt_exactly_when_an_address_changes() -> None:
    be = TritonBackend(chunk_size=256)
    p, stored, f, state, hyper, w = _case("momentum", torch.float32, "exact", be)
    be.step(p, stored, f, state, hyper, w, "momentum")
    builds = be.cache_info().builds
    for _ in range(2):
        be.step(p, stored, f, state, hyper, w, "momentum")
        be.advance_and_backup(p, stored, f, state, hyper, w, "momentum")  # same table
    assert be.cache_info().builds == builds
    state[0][0] = state[0][0].clone()  # a new buffer for one state tensor
    be.step(p, stored, f, state, hyper, w, "momentum")
    assert be.cache_info().builds == builds + 1
    be.step(p, stored, f, state, hyper, w, "momentum")
    assert be.cache_info().builds == builds + 1


def _launches_per_call(tb: TritonBackend, n: int) -> list[int]:
    p, r, f = (_bucket(torch.float32, k, [(40,)] * n) for k in range(3))
    state, hyper, w = _state("adam", p, 0), _hyper(n, skip=()), _weights(n)
    calls = [lambda: tb.store_retain(r, "int8"), lambda: tb.gram(r, f),
             lambda: tb.gram(r, f, per_tensor=True),
             lambda: tb.step(p, r, f, state, hyper, w, "adam"),
             lambda: tb.advance_and_backup(p, r, f, state, hyper, w, "adam"),
             lambda: tb.perturb(p, f, r, hyper[:, 0].contiguous())]
    counts = []
    for call in calls:
        reset_launch_count()
        call()
        counts.append(launch_count())
    return counts


def test_launches_per_call_are_constant(tb: TritonBackend) -> None:
    assert _launches_per_call(tb, 3) == _launches_per_call(tb, 12) == [1, 2, 2, 2, 2, 1]


def test_bad_input_raises_clear_errors(tb: TritonBackend) -> None:
    p, r, f, state, hyper, w = _case("adam", torch.float32, "exact", tb)
    step = tb.step
    tb.gram(r, f)
    step(p, r, f, state, hyper, w, "adam")  # known layouts: validation must still see ...
    with pytest.raises(ValueError, match="shape"):  # ... the same memory seen another way
        tb.gram(r, [f[0].view(3, 100)] + f[1:])
    with pytest.raises(ValueError, match="one device and dtype"):
        tb.gram(r, [*f[:4], f[4].view(torch.int32)])
    with pytest.raises(ValueError, match="exp_avg"):
        step(p, r, f, [[state[0][4], *state[0][1:]], state[1]], hyper, w, "adam")  # a shape
    with pytest.raises(ValueError, match="one device and dtype"):
        tb.gram(r, [t.double() for t in f])
    with pytest.raises(ValueError, match="entries"):
        tb.gram(r[:-1], f)
    with pytest.raises(ValueError, match="empty"):
        tb.gram([], [])
    with pytest.raises(TypeError, match="handles"):
        tb.gram([torch.ones(3, dtype=torch.int32)], [torch.ones(3, dtype=torch.int32)])
    with pytest.raises(ValueError, match="unknown base"):
        step(p, r, f, state, hyper, w, "lion")
    with pytest.raises(ValueError, match="unknown combine mode"):
        step(p, r, f, state, hyper, w, "adam", "blur")
    with pytest.raises(ValueError, match="2 state lists"):
        step(p, r, f, state[:1], hyper, w, "adam")
    with pytest.raises(ValueError, match="exp_avg_sq"):  # bf16 moments for float32 params
        step(p, r, f, [state[0], [s.bfloat16() for s in state[1]]], hyper, w, "adam")
    with pytest.raises(ValueError, match=r"hyper must have shape \(5, 7\)"):
        step(p, r, f, state, hyper[:, :6], w, "adam")
    with pytest.raises(TypeError, match="hyper must be torch.float64"):
        step(p, r, f, state, hyper.float(), w, "adam")
    with pytest.raises(ValueError, match=r"weights must have shape \(5, 2\)"):
        step(p, r, f, state, hyper, w[0], "adam")
    with pytest.raises(TypeError, match="weights must be a device tensor"):
        step(p, r, f, state, hyper, [0.5, 0.5], "adam")
    with pytest.raises(ValueError, match="weights must be contiguous"):
        step(p, r, f, state, hyper, torch.ones(2, 5, dtype=torch.float64).t(), "adam")
    with pytest.raises(ValueError, match=r"scale must have shape \(5,\)"):
        tb.perturb(p, f, r, torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="unknown retain storage"):
        tb.store_retain(r, "int4")
    with pytest.raises(RuntimeError, match="backend='torch'"):
        tb.gram([torch.ones(4, device="meta")], [torch.ones(4, device="meta")])
    with pytest.raises(ValueError, match="chunk_size"):
        TritonBackend(chunk_size=300, block_size=64)
    with pytest.raises(ValueError, match="block_size"):
        TritonBackend(chunk_size=256, block_size=48)
    with pytest.raises(ValueError, match="num_warps"):
        TritonBackend(num_warps=3)
    empty = torch.zeros((0, 7), dtype=torch.float64)
    assert torch.equal(tb.step([], [], [], [[], []], empty, empty[:, :2], "adam"),
                       torch.zeros(2, dtype=torch.float64))


def test_store_retain_int8_is_compact_and_bit_identical(tb: TritonBackend) -> None:
    r = _bucket(torch.float32, 27)
    got = tb.store_retain(r, "int8")
    for a, x in zip(got, r):
        b = quantize_blockwise(x)
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
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "EARLY" in out.stdout and "ERR" in out.stdout and "TRITON_INTERPRET=1" in out.stdout
    assert "backend='torch'" in out.stdout


@pytest.mark.parametrize("seed", [0, 1])
def test_compact_lemma4_and_direction_error(tb: TritonBackend, seed: int) -> None:
    """NGDiff through the compact kernels: Lemma 4 holds for the stored g̃_R (norms from the
    codes), measured by the products of the pass itself, and the direction is within 2 % (L2)
    of the exact one."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(900,), (40, 30)]
    heavy = [torch.randn(s, generator=g) * torch.exp(2 * torch.randn(s, generator=g)) for s in shapes]
    noise = [torch.randn(s, generator=g) for s in shapes]
    f = [-0.9 * a / a.norm() + 0.1 * b / b.norm() for a, b in zip(heavy, noise)]  # conflicting
    p = [torch.zeros(s) for s in shapes]
    stored = tb.store_retain(heavy, "int8")
    rr, ff, _ = tb.gram(stored, f).tolist()
    w = torch.tensor([[rr ** -0.5, ff ** -0.5]] * 2, dtype=torch.float64)
    hyper = torch.tensor([[1.0, 0, 0, 0, 0, 1, 1]] * 2, dtype=torch.float64)
    d, _, prod = tb.advance_and_backup(p, stored, _clone(f), [], hyper, w, "sgd")
    assert prod[0] >= 0.0 >= prod[1]
    d64 = torch.cat([t.reshape(-1) for t in d]).double()
    f64 = torch.cat([t.reshape(-1) for t in f]).double()
    r64 = torch.cat([t.reshape(-1) for t in heavy]).double()
    exact = r64 / r64.norm() - f64 / f64.norm()
    assert ((d64 - exact).norm() / exact.norm()).item() <= 0.02


_SCALE = st.floats(min_value=-30.0, max_value=30.0).map(lambda e: 10.0**e)


@settings(max_examples=10, deadline=None)
@given(sr=_SCALE, sf=_SCALE, dtype=st.sampled_from([torch.float32, torch.bfloat16]),
       seed=st.integers(0, 2**16))
def test_ngdiff_step_is_right_at_every_scale(tb: TritonBackend, sr: float, sf: float,
                                             dtype: torch.dtype, seed: int) -> None:
    """Gradients at scales 1e-30 … 1e30 (squares far outside float32). The Gram,
    the cosine, the NGDiff weights and the step itself match the float64 reference."""
    shapes = [(300,), (6, 5)]
    r = [(t * sr).to(dtype) for t in _bucket(torch.float64, seed, shapes)]
    f = [(t * sf).to(dtype) for t in _bucket(torch.float64, seed + 1, shapes)]
    p = _bucket(dtype, seed + 2, shapes)
    gram = tb.gram(r, f)
    want = naive.gram(r, f)
    torch.testing.assert_close(gram, want, rtol=1e-13, atol=0)
    cosine = gram[2] / (gram[0] * gram[1]).sqrt()
    assert torch.isfinite(cosine) and abs(cosine.item()) <= 1
    w = torch.stack([gram[0].rsqrt(), gram[1].rsqrt()]).expand(2, 2).contiguous()
    hyper = torch.tensor([[0.1, 0, 0, 0, 0, 1, 1]] * 2, dtype=torch.float64)
    want_p, _, want_prod = naive.step(p, r, f, [], hyper, w, "sgd")
    prod = tb.step(p, r, f, [], hyper, w, "sgd")
    for a, b in zip(p, want_p):
        _close(a, b, dtype)
    torch.testing.assert_close(prod, want_prod, rtol=1e-5, atol=1e-5 * want_prod.abs().max())
    assert torch.isfinite(prod).all()

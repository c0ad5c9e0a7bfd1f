"""The fused step / advance kernel against the float64 reference, for every base, combine
mode, storage and dtype; skipped rows; products at extreme scales; determinism."""
from __future__ import annotations

import math
from itertools import chain

import pytest
import torch
from fastngd.kernels import naive
from fastngd.kernels import step as kstep
from hypothesis import given, settings
from hypothesis import strategies as st

from fastngd.compact import code_table, quantize_blockwise

from ._util import (
    DTYPES,
    GEO,
    GEO_MULTI,
    KINDS,
    MODES,
    TOL,
    assert_close64,
    bucket,
    clone,
    hyper_rows,
    same_bits,
    state_for,
    state_names,
    table,
    weight_rows,
)

SKIP = 1  # the 1-element tensor's row is skipped (lr = 0)


def _columns(p, stored, f, state, backups=None) -> dict:
    cols = {"P": p, "F": f}
    if isinstance(stored[0], torch.Tensor):
        cols["R"] = stored
    else:
        cols["R"], cols["A"] = [q.codes for q in stored], [q.absmax for q in stored]
    for name, col in zip(("S0", "S1"), state):
        cols[name] = col
    if backups is not None:
        cols["X"] = backups
    return cols


def _case(kind: str, dtype: torch.dtype, storage: str, seed: int = 0):
    p, r, f = bucket(dtype, seed), bucket(dtype, seed + 1), bucket(dtype, seed + 2)
    stored = [quantize_blockwise(t) for t in r] if storage == "int8" else r
    state = state_for(kind, p, seed + 3)
    return p, stored, f, state, hyper_rows(len(p), skip=(SKIP,)), weight_rows(len(p), seed)


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_products(got, want, stored, f, us) -> None:
    """Products within float32 arithmetic of the reference, relative to Σ|g|·|u|."""
    mags = torch.zeros(2, dtype=torch.float64)
    for r, ff, u in zip(stored, f, us):
        mags += torch.stack([(naive.dense(r).abs() * u.abs()).sum(), (ff.double().abs() * u.abs()).sum()])
    assert got.dtype == torch.float64 and got.shape == (2,)
    assert torch.all((got - want).abs() <= 1e-5 * mags), (got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("storage", ["exact", "int8"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_step_matches_reference(kind: str, mode: str, storage: str, dtype: torch.dtype) -> None:
    p, stored, f, state, hyper, w = _case(kind, dtype, storage)
    want_p, want_state, want_prod = naive.step(p, stored, f, state, hyper, w, kind, mode)
    us, _, _ = naive.advance(p, stored, f, state, hyper, w, kind, mode)
    p0, s0, f0 = clone(p), [clone(c) for c in state], clone(f)
    got = kstep.fused(table(_columns(p, stored, f, state)), hyper, w, dtype, kind, mode, GEO,
                      quant=storage == "int8", code=code_table())
    for i, (a, b) in enumerate(zip(p, want_p)):
        assert_close64(a, b, dtype)
        for col, want_col in zip(state, want_state):
            assert_close64(col[i], want_col[i], _acc(dtype))
    assert same_bits([p[SKIP]], [p0[SKIP]])  # the skipped row: not written
    assert same_bits([c[SKIP] for c in state], [c[SKIP] for c in s0])
    _check_products(got, want_prod, stored, f0, us)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("storage", ["exact", "int8"])
@pytest.mark.parametrize("kind", KINDS)
def test_advance_writes_u_and_a_bit_exact_backup(kind: str, storage: str, dtype: torch.dtype
                                                 ) -> None:
    mode = MODES[(KINDS.index(kind) + DTYPES.index(dtype)) % len(MODES)]  # every mode per kind
    p, stored, f, state, hyper, w = _case(kind, dtype, storage, seed=10)
    want_u, want_state, want_prod = naive.advance(p, stored, f, state, hyper, w, kind, mode)
    p0, s0, f0 = clone(p), [clone(c) for c in state], clone(f)
    compact = storage == "int8"
    backups = [torch.full_like(t, math.nan) for t in p] if compact else None
    got = kstep.fused(table(_columns(p, stored, f, state, backups)), hyper, w, dtype, kind, mode,
                      GEO, advance=True, quant=compact, code=code_table())
    u_buf, b_buf = (f, backups) if compact else (stored, f)
    assert same_bits(p, p0)  # θ itself untouched
    assert same_bits(b_buf, p0)  # bit-exact backup, the skipped row's included
    for i, (u, want) in enumerate(zip(u_buf, want_u)):
        assert_close64(u, want, dtype, scale=4.0 if dtype == torch.float16 else 1.0)
        for col, want_col in zip(state, want_state):
            assert_close64(col[i], want_col[i], _acc(dtype))
    assert torch.all(u_buf[SKIP] == 0)  # skipped: u = 0 ...
    assert same_bits([c[SKIP] for c in state], [c[SKIP] for c in s0])  # ... state untouched
    _check_products(got, want_prod, stored, f0, want_u)


@pytest.mark.parametrize("advance", [False, True])
def test_several_vector_steps_per_chunk(advance: bool) -> None:
    p, r, f, state, hyper, w = _case("adamw", torch.float32, "exact", seed=20)
    want = naive.advance(p, r, f, state, hyper, w, "adamw", "sago")[0] if advance else \
        naive.step(p, r, f, state, hyper, w, "adamw", "sago")[0]
    kstep.fused(table(_columns(p, r, f, state)), hyper, w, torch.float32, "adamw", "sago",
                GEO_MULTI, advance=advance)
    for got, exp in zip(r if advance else p, want):
        assert_close64(got, exp, torch.float32)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
@pytest.mark.parametrize("advance", [False, True])
def test_skipped_rows_never_read_nan_gradients_or_state(advance: bool) -> None:
    p, r, f, state, hyper, w = _case("adam", torch.float32, "exact", seed=30)
    for t in (r[0], f[0], state[0][0], state[1][0]):
        t.fill_(math.nan)
    hyper[0, 0] = 0.0
    p0, s0 = clone(p), [clone(c) for c in state]
    prod = kstep.fused(table(_columns(p, r, f, state)), hyper, w, torch.float32, "adam", "linear",
                       GEO, advance=advance)
    assert torch.isfinite(prod).all()
    assert same_bits([state[0][0], state[1][0]], [s0[0][0], s0[1][0]])
    if advance:
        assert torch.all(r[0] == 0) and same_bits([f[0]], [p0[0]])
    else:
        assert same_bits([p[0]], [p0[0]])


def test_bitwise_deterministic() -> None:
    runs = []
    for _ in range(2):
        p, r, f, state, hyper, w = _case("adam", torch.float32, "exact", seed=40)
        prod = kstep.fused(table(_columns(p, r, f, state)), hyper, w, torch.float32, "adam",
                           "sago_prefer_retain", GEO)
        runs.append((p, state, prod))
    (pa, sa, qa), (pb, sb, qb) = runs
    assert same_bits(pa, pb) and same_bits(sa[0] + sa[1], sb[0] + sb[1]) and same_bits([qa], [qb])


def test_products_and_direction_at_extreme_scales() -> None:
    """r = 1e-30 and f = 1e30 with a retain weight of 1e40 (beyond float32's range): the
    direction 1e10 − 1 and the products 3e-18 and 3e42 (which overflow or lose their
    factors in float32) come out finite and right."""
    p = [torch.zeros(300)]
    r = [torch.full((300,), 1e-30)]
    f = [torch.full((300,), 1e30)]
    w = torch.tensor([[1e40, 1e-30]], dtype=torch.float64)
    hyper = torch.tensor([[1.0, 0, 0, 0, 0, 1, 1]], dtype=torch.float64)
    prod = kstep.fused(table(_columns(p, r, f, [])), hyper, w, torch.float32, "sgd", "linear", GEO)
    d = naive.direction(r[0], f[0], (1e40, 1e-30))  # 1e10 − 1
    assert_close64(p[0], -d, torch.float32)
    want = torch.stack([(r[0].double() * d).sum(), (f[0].double() * d).sum()])
    torch.testing.assert_close(prod, want, rtol=1e-6, atol=0)
    assert prod[0] == pytest.approx(3e-18, rel=1e-6) and prod[1] == pytest.approx(3e42, rel=1e-6)


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_unknown_names_and_missing_code_table_raise(kind: str) -> None:
    p, r, f, state, hyper, w = _case(kind, torch.float32, "exact")
    tab = table(_columns(p, r, f, state))
    with pytest.raises(ValueError, match="unknown base"):
        kstep.fused(tab, hyper, w, torch.float32, "lion", "linear", GEO)
    with pytest.raises(ValueError, match="unknown combine mode"):
        kstep.fused(tab, hyper, w, torch.float32, kind, "blur", GEO)
    with pytest.raises(ValueError, match="code table"):
        kstep.fused(tab, hyper, w, torch.float32, kind, "linear", GEO, quant=True)
    assert len(state) == len(state_names(kind))


@settings(max_examples=10, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=600),
    kind=st.sampled_from(KINDS),
    mode=st.sampled_from(MODES),
    lr=st.floats(min_value=-2.0, max_value=2.0, allow_nan=False),
    wr=st.floats(min_value=0.0, max_value=3.0),
    wf=st.floats(min_value=0.0, max_value=3.0),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_step_property(n: int, kind: str, mode: str, lr: float, wr: float, wf: float,
                       seed: int) -> None:
    p, r, f = (bucket(torch.float32, seed + k, sizes=(n, 2)) for k in range(3))
    state = state_for(kind, p, seed)
    hyper = hyper_rows(2, seed=seed)
    hyper[0, 0] = lr
    w = torch.tensor([[wr, wf], [wf, wr]], dtype=torch.float64)
    want_p, want_state, _ = naive.step(p, r, f, state, hyper, w, kind, mode)
    kstep.fused(table(_columns(p, r, f, state)), hyper, w, torch.float32, kind, mode, GEO)
    for got, exp in zip(chain(p, *state), chain(want_p, *want_state)):
        torch.testing.assert_close(got.double(), exp, **TOL[torch.float32])

"""Kernel checks of ``bench/gpu_check.py`` (part 1): every operation of the Triton backend
against the float64 reference :mod:`fastngd.kernels.naive` and the torch backend.

On one bucket of standard-normal tensors (odd sizes over several chunks, one element, a
zero-size tensor and two non-contiguous transposes, which take the per-tensor fallback), in
one dtype: the Gram reduction (exact and int8, summed and per tensor), the int8 store (codes
and scales bit for bit against :func:`fastngd.compact.quantize_blockwise` and the torch
backend), the fused step and ``advance_and_backup`` of every base (``sgd``, ``momentum``,
``adam``, ``adamw``) with every combine mode and both storages, the perturbation, and one
step with weights outside float32's normal range.

The ``hyper`` table skips two rows (``lr = 0``: parameter and state must come out bit for
bit as they went in) and gives two rows the smallest positive float64 as ``lr`` (torch's
``lr = 0``: the parameter is kept bit for bit, the state advances), one of each on the
kernel path and on the fallback path. The Gram reduction and the step give the same bits
when run twice.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor

from bench._gpu_compare import bitwise, compare, count_launches, tolerance

__all__ = ["KernelChecks", "kernel_combos", "kernels_item"]

Tol = tuple[float, float]
KINDS = ("sgd", "momentum", "adam", "adamw")
MODES = ("linear", "sago", "sago_prefer_retain")


def kernel_combos(smoke: bool) -> list[tuple[str, str, str]]:
    """``(kind, mode, storage)`` of the step and advance checks: all of them on a GPU; in
    smoke mode every base, mode and storage once (the interpreter is slow)."""
    if smoke:
        return [("sgd", "linear", "exact"), ("momentum", "sago", "int8"),
                ("adam", "sago_prefer_retain", "exact"), ("adamw", "linear", "int8")]
    return [(k, m, s) for k in KINDS for m in MODES for s in ("exact", "int8")]


def _bucket(device: torch.device, dtype: torch.dtype, sizes: Any, seed: int,
            scale: float = 1.0) -> list[Tensor]:
    """Normal tensors (``scale`` times standard): odd-sized flat ones
    (``sizes.kernel_sizes``), a zero-size one and two non-contiguous transposes
    (``sizes.kernel_2d``)."""
    g = torch.Generator(device="cpu").manual_seed(seed)

    def draw(*shape: int) -> Tensor:
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(device, dtype)

    out = [draw(n) for n in sizes.kernel_sizes]
    out.append(torch.empty(0, device=device, dtype=dtype))
    rows, cols = sizes.kernel_2d
    out += [draw(rows, cols).t(), draw(cols, rows).t()]
    return out


def _clones(ts: Sequence[Tensor]) -> list[Tensor]:
    return [t.clone() for t in ts]  # keeps strides: a transposed tensor stays non-contiguous


def _gram_scaled(g: Tensor, ref: Tensor) -> Tensor:
    """``[rr, ff, rf]`` rows divided by ``[rr, ff, √(rr·ff)]`` of the reference: every
    entry's rounding error is then relative to the sums of magnitudes it came from (``rf``
    itself may be near zero)."""
    ref = ref.double().to(g.device).reshape(-1, 3)
    scale = torch.stack([ref[:, 0], ref[:, 1], (ref[:, 0] * ref[:, 1]).sqrt()], 1)
    return g.double().reshape(-1, 3) / scale.clamp_min(1e-300)


def hyper_rows(n: int, kind: str) -> list[list[float]]:
    """``hyper`` rows of a bucket of ``n ≥ 4`` tensors whose last two take the fallback:
    learning rates 1e-2…2e-2, weight decay on every other row, Adam's constants at step 3;
    row 0 and row ``n − 2`` skipped (``lr = 0``), row 1 and row ``n − 1`` at the smallest
    positive float64 (``lr = 0`` the way torch means it)."""
    b1, b2 = (0.9, 0.99) if kind in ("adam", "adamw") else (0.8, 0.0)
    t = 3
    rows = []
    for i in range(n):
        lr = 1e-2 + 1e-2 * i / max(1, n - 1)
        bc = (1 - b1**t, 1 - b2**t) if kind in ("adam", "adamw") else (1.0, 1.0)
        rows.append([lr, 0.01 * (i % 2), b1, b2, 1e-8, *bc])
    for i in (0, n - 2):
        rows[i][0] = 0.0
    for i in (1, n - 1):
        rows[i][0] = math.ulp(0.0)
    return rows


class KernelChecks:
    """The checks of one dtype; ``run()`` returns ``{name: record}``."""

    def __init__(self, device: torch.device, dtype: torch.dtype, sizes: Any) -> None:
        from fastngd.backends import TorchBackend, scalar_dtype
        from fastngd.backends.triton import TritonBackend

        self.tr, self.to = TritonBackend(), TorchBackend()
        self.device, self.dtype, self.sizes = device, dtype, sizes
        self.p, self.r, self.f, self.d, self.b = (_bucket(device, dtype, sizes, seed)
                                                  for seed in range(1, 6))
        n = len(self.p)
        self.sd = scalar_dtype(device)
        self.w = torch.tensor([[0.7 + 0.05 * i, 1.3 - 0.05 * i] for i in range(n)],
                              device=device, dtype=self.sd)
        self.scale = torch.linspace(-2e-2, 2e-2, n, device=device, dtype=self.sd)
        self.scale[1] = 0.0  # copies the backup back bit for bit
        self.tol = tolerance(dtype)
        self.checks: dict[str, Any] = {}

    # -------------------------------------------------------------- helpers
    def _record(self, name: str, got: Sequence[Tensor], ref: Sequence[Tensor],
                other: Sequence[Tensor], launches: int, tol: Optional[Tol] = None,
                **flags: bool) -> None:
        tol = tol or self.tol
        vs_ref = compare(got, [x.to(self.device) for x in ref], *tol)
        vs_torch = compare(got, other, *tol)
        self.checks[name] = {"ok": vs_ref["ok"] and vs_torch["ok"] and all(flags.values()),
                             "vs_naive": vs_ref, "vs_torch": vs_torch, "launches": launches,
                             **flags}

    def _state(self, kind: str) -> list[list[Tensor]]:
        """Random state of base ``kind``: ``m`` of either sign, ``v ≥ 0``."""
        from fastngd.backends import accumulation_dtype, state_names

        g = torch.Generator(device="cpu").manual_seed(11)
        acc = accumulation_dtype(self.dtype)
        out = []
        for k, _ in enumerate(state_names(kind)):
            draw = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in self.p]
            if k == 1:
                draw = [x.abs() * 1e-2 for x in draw]
            out.append([x.to(self.device, acc) for x in draw])
        return out

    def _hyper(self, kind: str) -> Tensor:
        return torch.tensor(hyper_rows(len(self.p), kind), device=self.device, dtype=self.sd)

    def _retain(self, storage: str, q: Sequence[Any]) -> list[Any]:
        """Fresh retain entries (``advance_and_backup`` overwrites exact ones)."""
        return _clones(self.r) if storage == "exact" else list(q)

    # -------------------------------------------------------------- checks
    def gram(self, name: str, retain: Sequence[Any]) -> None:
        from fastngd.kernels import naive

        got, k = count_launches(lambda: self.tr.gram(retain, self.f))
        again = self.tr.gram(retain, self.f)  # no atomics: the same bits every time
        rows = self.tr.gram(retain, self.f, per_tensor=True)
        ref, ref_rows = naive.gram(retain, self.f), naive.gram(retain, self.f, per_tensor=True)
        rows_ok = compare([_gram_scaled(rows, ref_rows)], [_gram_scaled(ref_rows, ref_rows)],
                          0.0, 1e-5)["ok"]
        self._record(name, [_gram_scaled(got, ref)], [_gram_scaled(ref, ref)],
                     [_gram_scaled(self.to.gram(retain, self.f), ref)], k, tol=(0.0, 1e-5),
                     repeat_bitwise=torch.equal(got, again), per_tensor_rows=rows_ok)

    def store(self) -> list[Any]:
        from fastngd.compact import quantize_blockwise

        q_tr, k = count_launches(lambda: self.tr.store_retain(self.r, "int8"))

        def same(others: Sequence[Any]) -> bool:
            return all(torch.equal(a.codes, b.codes) and torch.equal(a.absmax, b.absmax)
                       for a, b in zip(q_tr, others))

        ref = same([quantize_blockwise(x) for x in self.r])
        other = same(self.to.store_retain(self.r, "int8"))
        self.checks["store_retain/int8"] = {"ok": ref and other, "launches": k,
                                            "codes_equal_quantize_blockwise": ref,
                                            "codes_equal_torch_backend": other}
        return q_tr

    def step(self, kind: str, mode: str, storage: str, q: Sequence[Any]) -> None:
        """The fused step: parameters, state and products against naive and torch; skipped
        rows untouched, tiny-lr rows keep θ and advance the state; same bits twice."""
        from fastngd.kernels import naive

        retain, hyper = self._retain(storage, q), self._hyper(kind)
        st0 = self._state(kind)
        runs = []
        for be in (self.tr, self.tr, self.to):
            p, st = _clones(self.p), [_clones(s) for s in st0]
            products, k = count_launches(
                lambda: be.step(p, retain, self.f, st, hyper, self.w, kind, mode))
            runs.append((p, st, products, k))
        (p_tr, st_tr, prod_tr, k), (p_again, st_again, _, _), (p_to, st_to, prod_to, _) = runs
        ref_p, ref_st, ref_prod = naive.step(self.p, retain, self.f, st0, hyper, self.w, kind,
                                             mode)
        n = len(self.p)
        skipped, tiny = (0, n - 2), (1, n - 1)
        state_tol = tolerance(st0[0][0].dtype) if st0 else self.tol
        states = [compare(a, [x.to(self.device) for x in b], *state_tol)["ok"]
                  and compare(a, c, *state_tol)["ok"] for a, b, c in zip(st_tr, ref_st, st_to)]
        self._record(
            f"step/{kind}/{mode}/{storage}", p_tr, ref_p, p_to, k,
            zero_lr_untouched=all(torch.equal(p_tr[i], self.p[i])
                                  and all(torch.equal(s[i], s0[i]) for s, s0 in zip(st_tr, st0))
                                  for i in skipped),
            tiny_lr_keeps_theta_and_advances_state=all(
                torch.equal(p_tr[i], self.p[i])
                and all(not torch.equal(s[i], s0[i]) for s, s0 in zip(st_tr, st0))
                for i in tiny),
            state_close=all(states),
            products_close=_close_products(prod_tr, ref_prod, prod_to),
            repeat_bitwise=bitwise(p_tr, p_again) and all(
                bitwise(a, b) for a, b in zip(st_tr, st_again)))

    def advance(self, kind: str, mode: str, storage: str, q: Sequence[Any]) -> None:
        """``advance_and_backup``: ``u`` against naive and torch, the backup bit for bit,
        θ unchanged, ``u = 0`` on skipped rows."""
        from fastngd.kernels import naive

        hyper, st0 = self._hyper(kind), self._state(kind)
        out = []
        for be in (self.tr, self.to):
            retain, forget, st = self._retain(storage, q), _clones(self.f), [_clones(s)
                                                                            for s in st0]
            p = _clones(self.p)
            result, k = count_launches(
                lambda: be.advance_and_backup(p, retain, forget, st, hyper, self.w, kind, mode))
            out.append((p, result, k))
        (p_tr, (u_tr, b_tr, prod_tr), k), (_, (u_to, _, prod_to), _) = out
        u_ref, _, prod_ref = naive.advance(self.p, self._retain(storage, q), self.f, st0, hyper,
                                           self.w, kind, mode)
        n = len(self.p)
        self._record(f"advance/{kind}/{mode}/{storage}", u_tr, u_ref, u_to, k,
                     backup_bitwise=bitwise(b_tr, self.p), theta_unchanged=bitwise(p_tr, self.p),
                     skipped_update_zero=all(not bool(u_tr[i].any()) for i in (0, n - 2)),
                     products_close=_close_products(prod_tr, prod_ref, prod_to))

    def perturb(self) -> None:
        from fastngd.kernels import naive

        p_tr, p_to = _clones(self.p), _clones(self.p)
        _, k = count_launches(lambda: self.tr.perturb(p_tr, self.b, self.d, self.scale))
        self.to.perturb(p_to, self.b, self.d, self.scale)
        ref = naive.perturb(self.b, self.d, self.scale.tolist())
        self._record("perturb", p_tr, ref, p_to, k,
                     zero_scale_is_backup=torch.equal(p_tr[1], self.b[1]))

    def extreme_weights(self) -> None:
        """Weights far outside float32's normal range (``1e39``, ``1e-41``) next to
        gradients of ``1e-30`` and ``1e30``: the step and its products stay right."""
        from fastngd.kernels import naive

        r = _bucket(self.device, self.dtype, self.sizes, 7, scale=1e-30)
        f = _bucket(self.device, self.dtype, self.sizes, 8, scale=1e30)
        n = len(self.p)
        w = torch.tensor([[1e39, 1e-41]] * n, device=self.device, dtype=self.sd)
        hyper = torch.tensor([[1e-2, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]] * n, device=self.device,
                             dtype=self.sd)
        p_tr, p_to = _clones(self.p), _clones(self.p)
        prod_tr, k = count_launches(lambda: self.tr.step(p_tr, r, f, [], hyper, w, "sgd"))
        prod_to = self.to.step(p_to, r, f, [], hyper, w, "sgd")
        ref, _, prod_ref = naive.step(self.p, r, f, [], hyper, w, "sgd")
        self._record("step/extreme-weights", p_tr, ref, p_to, k,
                     products_close=_close_products(prod_tr, prod_ref, prod_to))

    def run(self, combos: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
        self.gram("gram/exact", self.r)
        q = self.store()
        self.gram("gram/int8", q)
        for kind, mode, storage in combos:
            self.step(kind, mode, storage, q)
            self.advance(kind, mode, storage, q)
        self.perturb()
        self.extreme_weights()
        return self.checks


def _close_products(got: Tensor, ref: Tensor, other: Tensor, rtol: float = 1e-4) -> bool:
    """The products ``[Σ r·u, Σ f·u]`` against the reference and the torch backend, relative
    to the reference's magnitude (each is a sum of terms of either sign)."""
    scale = ref.double().abs().max().clamp_min(1e-300).item()
    ref = ref.double().to(got.device)
    return bool(((got.double() - ref).abs() <= rtol * scale).all()
                and ((other.double().to(got.device) - ref).abs() <= rtol * scale).all())


def kernels_item(device: torch.device, dtype: torch.dtype, sizes: Any,
                 smoke: bool = False) -> dict[str, Any]:
    """One recorder item: every kernel check in one dtype, with a summary line."""
    checks = KernelChecks(device, dtype, sizes).run(kernel_combos(smoke))
    failed = [k for k, v in checks.items() if not v["ok"]]
    return {"ok": not failed, "checks": checks, "failed": failed,
            "summary": f"{len(checks) - len(failed)}/{len(checks)} kernel checks pass"}

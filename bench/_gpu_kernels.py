"""Kernel checks of ``bench/gpu_check.py`` (part 1): every operation of the Triton backend
against the float64 reference :mod:`fastngd.kernels.naive` and the torch backend.

On one bucket of standard-normal tensors (odd sizes over several chunks, one element, a zero-
size tensor and a non-contiguous transpose, which takes the per-tensor fallback), in one dtype:
Gram (exact and int8), the int8 store (codes and scales bit for bit against
:func:`fastngd.compact.quantize_blockwise` and the torch backend), the update and the GeN
direction/backup (linear and SAGO, exact and int8), and the perturbation. A tensor whose
learning rate or scale is zero must come out bit for bit as it went in (or as its backup),
and the Gram reduction and the update give the same bits when run twice.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor

from bench._gpu_compare import bitwise, compare, count_launches, tolerance

__all__ = ["KernelChecks", "kernels_item"]

Tol = tuple[float, float]


def _bucket(device: torch.device, dtype: torch.dtype, sizes: Any, seed: int) -> list[Tensor]:
    """Standard-normal tensors: odd-sized flat ones (``sizes.kernel_sizes``), a zero-size one
    and a non-contiguous transpose (``sizes.kernel_2d``)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    out = [torch.randn(n, generator=g, dtype=torch.float64).to(device, dtype)
           for n in sizes.kernel_sizes]
    out.append(torch.empty(0, device=device, dtype=dtype))
    rows, cols = sizes.kernel_2d
    out.append(torch.randn(rows, cols, generator=g, dtype=torch.float64).to(device, dtype).t())
    return out


def _clones(ts: Sequence[Tensor]) -> list[Tensor]:
    return [t.clone() for t in ts]  # keeps strides: a transposed tensor stays non-contiguous


def _gram_scaled(g: Tensor, ref: Tensor) -> Tensor:
    """``[rr, ff, rf]`` divided by ``[rr, ff, √(rr·ff)]`` of the reference: every entry's
    rounding error is then relative to the sums of magnitudes it came from (``rf`` itself
    may be near zero)."""
    ref = ref.double().to(g.device)
    scale = torch.stack([ref[0], ref[1], (ref[0] * ref[1]).sqrt()]).clamp_min(1e-300)
    return g.double() / scale


class KernelChecks:
    """The checks of one dtype; ``run()`` returns ``{name: record}``."""

    def __init__(self, device: torch.device, dtype: torch.dtype, sizes: Any) -> None:
        from fastngd.backends import TorchBackend
        from fastngd.backends.triton import TritonBackend

        self.tr, self.to = TritonBackend(), TorchBackend()
        self.device, self.dtype = device, dtype
        self.p, self.r, self.f, self.d, self.b = (_bucket(device, dtype, sizes, seed)
                                                  for seed in range(1, 6))
        n = len(self.p)
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        self.w = torch.tensor([0.7, 1.3], device=device, dtype=acc)
        self.lr = torch.linspace(1e-2, 2e-2, n, device=device, dtype=acc)
        self.lr[0] = 0.0  # never written
        self.scale = torch.linspace(-2e-2, 2e-2, n, device=device, dtype=acc)
        self.scale[1] = 0.0  # copies the backup back bit for bit
        self.tol = tolerance(dtype)
        self.checks: dict[str, Any] = {}

    def _record(self, name: str, got: Sequence[Tensor], ref: Sequence[Tensor],
                other: Sequence[Tensor], launches: int, tol: Optional[Tol] = None,
                tol_torch: Optional[Tol] = None, **flags: bool) -> None:
        tol = tol or self.tol
        vs_ref = compare(got, [x.to(self.device) for x in ref], *tol)
        vs_torch = compare(got, other, *(tol_torch or tol))
        self.checks[name] = {"ok": vs_ref["ok"] and vs_torch["ok"] and all(flags.values()),
                             "vs_naive": vs_ref, "vs_torch": vs_torch, "launches": launches,
                             **flags}

    def gram(self, name: str, retain: Sequence[Any]) -> None:
        from fastngd.kernels import naive

        got, k = count_launches(lambda: self.tr.gram(retain, self.f))
        again = self.tr.gram(retain, self.f)  # no atomics: the same bits every time
        ref = naive.gram(retain, self.f)
        # the torch backend rounds dequantized g_R to the parameter dtype (the kernels and
        # the reference keep float32): for int8 codes of bf16/fp16 gradients its Gram
        # scalars differ at that dtype's precision
        loose = name.endswith("int8") and self.dtype not in (torch.float32, torch.float64)
        self._record(name, [_gram_scaled(got, ref)], [_gram_scaled(ref, ref)],
                     [_gram_scaled(self.to.gram(retain, self.f), ref)], k, tol=(0.0, 1e-5),
                     tol_torch=(0.0, self.tol[0]) if loose else None,
                     repeat_bitwise=torch.equal(got, again))

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

    def update(self, mode: str, retain: Sequence[Any], sago: bool) -> None:
        from fastngd.kernels import naive

        p_tr, p_again, p_to = _clones(self.p), _clones(self.p), _clones(self.p)
        _, k = count_launches(lambda: self.tr.update(p_tr, retain, self.f, self.lr, self.w, sago))
        self.tr.update(p_again, retain, self.f, self.lr, self.w, sago)
        self.to.update(p_to, retain, self.f, self.lr, self.w, sago)
        ref = naive.update(self.p, retain, self.f, self.lr.tolist(), self.w.tolist(), sago)
        self._record(f"update/{mode}", p_tr, ref, p_to, k,
                     zero_lr_untouched=torch.equal(p_tr[0], self.p[0]),
                     repeat_bitwise=bitwise(p_tr, p_again))

    def direction(self, mode: str, retain: Sequence[Any], sago: bool) -> None:
        """``direction_and_backup`` overwrites its exact-mode inputs: runs on clones."""
        from fastngd.kernels import naive

        from fastngd.compact import QuantizedTensor

        def fresh() -> tuple[list[Any], list[Tensor]]:
            return ([x if isinstance(x, QuantizedTensor) else x.clone() for x in retain],
                    _clones(self.f))

        r1, f1 = fresh()
        (d_tr, b_tr), k = count_launches(
            lambda: self.tr.direction_and_backup(self.p, r1, f1, self.w, sago))
        r2, f2 = fresh()
        d_to, _ = self.to.direction_and_backup(self.p, r2, f2, self.w, sago)
        ref = [naive.direction(r, g, self.w.tolist(), sago) for r, g in zip(retain, self.f)]
        self._record(f"direction_and_backup/{mode}", d_tr, ref, d_to, k,
                     backup_bitwise=bitwise(b_tr, self.p))

    def perturb(self) -> None:
        from fastngd.kernels import naive

        p_tr, p_to = _clones(self.p), _clones(self.p)
        _, k = count_launches(lambda: self.tr.perturb(p_tr, self.b, self.d, self.scale))
        self.to.perturb(p_to, self.b, self.d, self.scale)
        ref = naive.perturb(self.b, self.d, self.scale.tolist())
        self._record("perturb", p_tr, ref, p_to, k,
                     zero_scale_is_backup=torch.equal(p_tr[1], self.b[1]))

    def run(self) -> dict[str, Any]:
        self.gram("gram/exact", self.r)
        q = self.store()
        self.gram("gram/int8", q)
        for storage, retain in (("exact", self.r), ("int8", q)):
            for sago in (False, True):
                mode = f"{'sago' if sago else 'linear'}/{storage}"
                self.update(mode, retain, sago)
                self.direction(mode, retain, sago)
        self.perturb()
        return self.checks


def kernels_item(device: torch.device, dtype: torch.dtype, sizes: Any) -> dict[str, Any]:
    """One recorder item: every kernel check in one dtype, with a summary line."""
    checks = KernelChecks(device, dtype, sizes).run()
    failed = [k for k, v in checks.items() if not v["ok"]]
    return {"ok": not failed, "checks": checks, "failed": failed,
            "summary": f"{len(checks) - len(failed)}/{len(checks)} kernel checks pass"}

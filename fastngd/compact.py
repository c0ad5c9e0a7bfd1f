"""Blockwise 8-bit storage of a gradient (the compact retain stash).

A tensor ``x`` (any floating dtype) is flattened and cut into blocks of :data:`BLOCK_SIZE`
(256) consecutive elements; the last block may be shorter. Block ``b`` keeps

* ``absmax[b] = max_i |x_i|`` over the block, in float32;
* one byte per element, ``code_i = 128·[x_i < 0] + j_i`` where ``j_i ∈ {0, …, 127}`` is the
  index of the magnitude level ``Q_j`` nearest to ``y_i = |x_i| / absmax[b]`` (computed in
  float32 with a correctly rounded division; ties go to the lower level).

Dequantisation is ``x̃_i = s_i · Q_{j_i} · absmax[b]`` in float32 (``s_i = −1`` when the sign
bit is set), rounded once to the requested dtype.

The code (a dynamic code in the spirit of 8-bit optimizers) has the 128 magnitude levels

    Q_j = sinh(a · j / 127) / sinh(a),   j = 0 … 127,   a = :data:`CODE_SHAPE` = 4,

so ``Q_0 = 0`` and ``Q_127 = 1`` exactly. Near zero the levels are almost evenly spaced
(step ≈ 1.2e-3 of the block maximum), towards the top they are geometric (relative step
≈ a·coth(a)/127 ≈ 3.2 %, so at most ≈ 1.6 % relative rounding error). Why not linear int8
(``Q_j = j/127``): on Gaussian data both are below 1 % L2 error, but gradients are heavy
tailed within a block (a few outlier features), and there the linear code loses the small
entries: measured relative L2 errors on 2^20 samples are, linear vs this code,
Gaussian 0.70 % vs 0.90 %, Student-t(2) 2.6 % vs 0.69 %, Gaussian with 0.4 % outliers ×50
3.2 % vs 0.64 %, log-normal scale mixture 1.7 % vs 0.48 %. The 2 % direction-error target
therefore rules out the linear code and is met by this one on all four.

Storage: 1 byte per element + 4 bytes per 256 elements = 0.254× the float32 bytes
(0.51× the bfloat16 bytes).

This module is the pure-PyTorch implementation (the torch-backend path and the reference
of the Triton quantize kernel, which produces bit-identical codes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["BLOCK_SIZE", "CODE_SHAPE", "QuantizedTensor", "code_magnitudes", "code_midpoints",
           "code_table", "encode_blocks", "quantize_blockwise"]

#: number of consecutive elements sharing one float32 absmax scale.
BLOCK_SIZE: int = 256
#: the shape parameter ``a`` of the magnitude levels ``Q_j = sinh(a·j/127)/sinh(a)``.
CODE_SHAPE: float = 4.0

_FLOAT_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
_CONSTANTS: dict[tuple[str, int], tuple[Tensor, Tensor, Tensor]] = {}


def _build_constants() -> tuple[Tensor, Tensor, Tensor]:
    j = torch.arange(128, dtype=torch.float64) / 127.0
    mags64 = torch.sinh(CODE_SHAPE * j) / math.sinh(CODE_SHAPE)
    mags64[0] = 0.0
    mags64[-1] = 1.0
    mags = mags64.to(torch.float32)
    m64 = mags.to(torch.float64)
    mids = ((m64[1:] + m64[:-1]) / 2).to(torch.float32)
    table = torch.cat([mags, -mags])
    return mags, mids, table


def _constants(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    dev = torch.device(device)
    key = (dev.type, -1 if dev.index is None else dev.index)
    if key not in _CONSTANTS:
        _CONSTANTS[key] = tuple(t.to(dev) for t in _build_constants())  # type: ignore[assignment]
    return _CONSTANTS[key]


def code_magnitudes(device: torch.device | str = "cpu") -> Tensor:
    """The 128 magnitude levels ``Q_j = sinh(a·j/127)/sinh(a)`` (float32, increasing)."""
    return _constants(torch.device(device))[0]


def code_midpoints(device: torch.device | str = "cpu") -> Tensor:
    """The 127 decision thresholds ``(Q_j + Q_{j+1})/2`` (float32, rounded from float64)."""
    return _constants(torch.device(device))[1]


def code_table(device: torch.device | str = "cpu") -> Tensor:
    """The 256-entry signed code: ``table[c] = (−1)^{c ≥ 128} · Q_{c mod 128}`` (float32)."""
    return _constants(torch.device(device))[2]


def num_blocks(numel: int) -> int:
    """Number of :data:`BLOCK_SIZE` blocks covering ``numel`` elements (``⌈numel/256⌉``)."""
    return (numel + BLOCK_SIZE - 1) // BLOCK_SIZE


@dataclass(eq=False, repr=False)
class QuantizedTensor:
    """A tensor stored as blockwise 8-bit codes.

    Attributes: ``codes`` (uint8, shape ``(numel,)``), ``absmax`` (float32, shape
    ``(⌈numel/256⌉,)``), ``shape`` (of the original tensor), ``dtype`` (of the original
    tensor). ``dequantize()`` gives ``x̃_i = table[codes_i] · absmax[i // 256]``.
    """

    codes: Tensor
    absmax: Tensor
    shape: torch.Size
    dtype: torch.dtype

    def __post_init__(self) -> None:
        self.shape = torch.Size(self.shape)
        n = self.shape.numel()
        if self.codes.dtype != torch.uint8 or self.codes.dim() != 1 or self.codes.numel() != n:
            raise ValueError(
                f"codes must be a 1-D uint8 tensor of {n} elements, got "
                f"{self.codes.dtype} {tuple(self.codes.shape)}"
            )
        if self.absmax.dtype != torch.float32 or self.absmax.shape != (num_blocks(n),):
            raise ValueError(
                f"absmax must be a float32 tensor of shape ({num_blocks(n)},), got "
                f"{self.absmax.dtype} {tuple(self.absmax.shape)}"
            )
        if not self.dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating dtype, got {self.dtype}")

    def __repr__(self) -> str:
        return (f"QuantizedTensor(shape={tuple(self.shape)}, dtype={self.dtype}, "
                f"device={self.device}, nbytes={self.nbytes})")

    @property
    def device(self) -> torch.device:
        """Device of the codes and scales."""
        return self.codes.device

    def numel(self) -> int:
        """Number of elements of the original tensor."""
        return self.shape.numel()

    @property
    def nbytes(self) -> int:
        """Bytes held: one per code plus four per block scale."""
        return self.codes.numel() * self.codes.element_size() + self.absmax.numel() * 4

    def dequantize(self, dtype: torch.dtype | None = None) -> Tensor:
        """Return ``x̃`` with the original shape, in ``dtype`` (default: the original dtype).

        The product ``table[c]·absmax`` is formed in float32 and rounded once to ``dtype``.
        """
        return self.dequantize_slice(0, self.numel(), dtype).view(self.shape)

    def dequantize_slice(self, start: int, stop: int, dtype: torch.dtype | None = None) -> Tensor:
        """Elements ``start:stop`` of the flattened ``x̃`` (same values as :meth:`dequantize`),
        formed without a tensor-sized temporary: ``table[c_i]·absmax[i // 256]`` in float32,
        rounded once to ``dtype`` (default: the original dtype)."""
        out_dtype = self.dtype if dtype is None else dtype
        n = self.numel()
        if not 0 <= start <= stop <= n:
            raise ValueError(f"slice {start}:{stop} out of range for {n} elements")
        if start == stop:
            return torch.empty(0, dtype=out_dtype, device=self.device)
        b0 = start // BLOCK_SIZE
        b1 = (stop + BLOCK_SIZE - 1) // BLOCK_SIZE
        off = start - b0 * BLOCK_SIZE
        scale = self.absmax[b0:b1].repeat_interleave(BLOCK_SIZE)[off:off + stop - start]
        values = code_table(self.device)[self.codes[start:stop].long()]
        return (values * scale).to(out_dtype)

    def to_state(self) -> dict[str, Any]:
        """A plain dict (tensors, ints, a dtype name) for ``state_dict``/``torch.save``.

        Note that ``torch.optim.Optimizer.load_state_dict`` casts every tensor of a
        parameter's state to the parameter's dtype; :meth:`from_state` casts the codes back
        to uint8 exactly, but float32 scales cast to bf16/fp16 lose precision, so an
        optimizer must restore compact entries without that cast.
        """
        return {
            "codes": self.codes,
            "absmax": self.absmax,
            "shape": list(self.shape),
            "dtype": str(self.dtype).replace("torch.", ""),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> QuantizedTensor:
        """Inverse of :meth:`to_state`."""
        missing = {"codes", "absmax", "shape", "dtype"} - set(state)
        if missing:
            raise ValueError(f"quantized state lacks keys {sorted(missing)}")
        name = str(state["dtype"]).replace("torch.", "")
        if name not in _FLOAT_DTYPES:
            raise ValueError(
                f"unknown dtype {state['dtype']!r} in quantized state; valid: "
                f"{', '.join(sorted(_FLOAT_DTYPES))}"
            )
        dtype = _FLOAT_DTYPES[name]
        return cls(
            codes=state["codes"].to(torch.uint8),
            absmax=state["absmax"].to(torch.float32),
            shape=torch.Size(int(s) for s in state["shape"]),
            dtype=dtype,
        )


if hasattr(torch.serialization, "add_safe_globals"):
    # A QuantizedTensor holds only tensors, a Size and a dtype: allow it in
    # ``torch.load(..., weights_only=True)`` (optimizer state saved mid-step holds them).
    torch.serialization.add_safe_globals([QuantizedTensor])


def quantize_blockwise(t: Tensor) -> QuantizedTensor:
    """Quantize ``t`` to blockwise 8-bit codes (see the module docstring for the code).

    Non-finite inputs give a non-finite dequantized block (NaN propagates through absmax).
    """
    if not isinstance(t, Tensor):
        raise TypeError(f"quantize_blockwise expects a Tensor, got {type(t).__name__}")
    if not t.dtype.is_floating_point:
        raise TypeError(f"quantize_blockwise expects a floating tensor, got {t.dtype}")
    n = t.numel()
    dev = t.device
    if n == 0:
        return QuantizedTensor(
            torch.empty(0, dtype=torch.uint8, device=dev),
            torch.empty(0, dtype=torch.float32, device=dev),
            t.shape,
            t.dtype,
        )
    codes, absmax = encode_blocks(t.detach().reshape(-1))
    return QuantizedTensor(codes, absmax, t.shape, t.dtype)


_PADDED_MIDS: dict[torch.device, Tensor] = {}


def _padded_mids(device: torch.device) -> Tensor:
    """``[-inf, m_0, …, m_126, +inf]``: the code's decision thresholds, padded."""
    if device not in _PADDED_MIDS:
        inf = torch.tensor([float("inf")], device=device)
        _PADDED_MIDS[device] = torch.cat([-inf, code_midpoints(device), inf])
    return _PADDED_MIDS[device]


def encode_blocks(flat: Tensor) -> tuple[Tensor, Tensor]:
    """Codes (uint8, one per element) and float32 block scales of a flat tensor.

    Per block of :data:`BLOCK_SIZE`: ``absmax = max |x|``, ``y = |x|/absmax`` and the level
    ``j`` = the number of decision thresholds (:func:`code_midpoints`) strictly below ``y``;
    the code is ``j + 128·[x < 0]``. For finite blocks ``j`` is found by inverting the code's
    shape, ``t = round(127/a · asinh(y·sinh a))`` (within one of ``j``), then one exact
    correction against the thresholds; otherwise by a binary search (``torch.bucketize``).
    Both give the same ``j``.
    """
    n = flat.numel()
    nb = num_blocks(n)
    x = flat.to(torch.float32)
    pad = nb * BLOCK_SIZE - n
    if pad:
        x = torch.cat([x, x.new_zeros(pad)])
    xb = x.view(nb, BLOCK_SIZE)
    ax = xb.abs()
    absmax = ax.amax(dim=1)
    safe = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    y = ax.div_(safe[:, None])
    if bool(torch.isfinite(absmax).all()):
        t = torch.asinh(y * math.sinh(CODE_SHAPE)).mul_(127.0 / CODE_SHAPE)
        j = t.add_(0.5).floor_().clamp_(0, 127).to(torch.int64)
        mids = _padded_mids(x.device)  # mids[k] is threshold k-1: mids[j] < y <= mids[j+1]
        j += (mids[j + 1] < y).to(torch.int64)
        j -= (mids[j] >= y).to(torch.int64)
    else:
        j = torch.bucketize(y, code_midpoints(x.device), right=False).clamp_(max=127)
    codes = (j + 128 * (xb < 0).to(j.dtype)).to(torch.uint8).view(-1)[:n]
    return codes.contiguous(), absmax.contiguous()

"""Work items of the torch backend: how a bucket is cut, and how an item's operands are read
and written back.

A *work item* is ``(indices, start, stop)``: a slice ``start:stop`` of one large tensor, a
group of small tensors (``start`` is ``None``; about one item's worth of elements in all), or
one whole tensor that is not contiguous (``start`` is ``None``). Every operand of an item is
read as one tensor in the accumulation dtype (:func:`read`): a *view* of the original memory
when it already has that dtype and is a single region (so updates happen in place, with no
temporary), otherwise a temporary (converted, dequantized or concatenated), which
:func:`write` stores back, rounded once.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor

__all__ = ["SMALL", "Item", "bounds", "plan", "read", "region", "write"]

#: tensors with fewer elements are batched into groups instead of sliced.
SMALL = 1 << 13

# (tensor indices, start, stop); start is None for whole tensors (a group of small tensors,
# or one non-contiguous tensor).
Item = tuple[list[int], Optional[int], Optional[int]]


def _flat(t: Any) -> bool:
    return not isinstance(t, Tensor) or t.is_contiguous()


def plan(tensor_lists: Sequence[Sequence[Any]], size: int, keys: Optional[Sequence[Any]] = None,
         skip: Optional[Sequence[bool]] = None) -> tuple[list[Item], list[int]]:
    """Cut a bucket into work items of about ``size`` elements; returns ``(items, sizes)``.

    A tensor whose entries (across ``tensor_lists``) are all contiguous is sliced (large) or
    grouped with its small neighbours of the same ``keys`` value; any other tensor is one
    whole-tensor item. Compact entries count as contiguous (they are read by slices). Empty
    tensors and those with ``skip[i]`` get no item.
    """
    first = tensor_lists[0]
    items: list[Item] = []
    sizes: list[int] = []
    group: list[int] = []
    gsize = 0
    gkey: Any = None

    def flush() -> None:
        nonlocal group, gsize
        if group:
            items.append((group, None, None))
            sizes.append(gsize)
        group, gsize = [], 0

    for i in range(len(first)):
        n = first[i].numel()
        if n == 0 or (skip is not None and skip[i]):
            continue
        flat = all(_flat(ts[i]) for ts in tensor_lists)
        key = None if keys is None else keys[i]
        if flat and n <= SMALL:
            if group and (gsize + n > size or key != gkey):
                flush()
            group.append(i)
            gsize += n
            gkey = key
            continue
        flush()
        if not flat:
            items.append(([i], None, None))
            sizes.append(n)
            continue
        for s in range(0, n, size):
            items.append(([i], s, min(s + size, n)))
            sizes.append(min(size, n - s))
    flush()
    return items, sizes


def region(t: Any, s: Optional[int], e: Optional[int], dtype: Optional[torch.dtype] = None) -> Tensor:
    """Elements ``s:e`` of ``t`` flattened (a view), or the whole tensor (shape kept) when
    ``s`` is None; compact codes are dequantized (in ``dtype``, default their own)."""
    if isinstance(t, Tensor):
        return t if s is None else t.view(-1)[s:e]
    if s is None:
        return t.dequantize(dtype)
    return t.dequantize_slice(s, e, dtype)


def bounds(item: Item) -> tuple[Optional[int], Optional[int]]:
    """``(start, stop)`` of the item's region in each of its tensors: the slice of a
    single-tensor item, ``(None, None)`` (whole tensors) for a group."""
    idx, s, e = item
    return (s, e) if len(idx) == 1 else (None, None)


def read(ts: Sequence[Any], item: Item, acc: torch.dtype) -> Tensor:
    """The item's region of the entries ``ts[i]`` as one tensor in ``acc``: a view of the
    original memory when possible (single region, dtype ``acc``), else a temporary (a group
    is concatenated, flat)."""
    idx = item[0]
    if len(idx) == 1:
        s, e = bounds(item)
        x = region(ts[idx[0]], s, e, acc)
        return x if x.dtype == acc else x.to(acc)
    return torch.cat([region(ts[i], None, None, acc).reshape(-1).to(acc) for i in idx])


def write(ts: Sequence[Tensor], item: Item, value: Tensor) -> None:
    """Store ``value`` (what :func:`read` gave, modified) into the item's region of
    ``ts``, rounded once to their dtype; nothing to do when ``value`` is that region."""
    idx = item[0]
    if len(idx) == 1:
        s, e = bounds(item)
        dst = region(ts[idx[0]], s, e)
        if not (dst.dtype == value.dtype and dst.data_ptr() == value.data_ptr()
                and dst.shape == value.shape and dst.stride() == value.stride()):
            dst.copy_(value)
        return
    pieces = value.split([ts[i].numel() for i in idx])
    torch._foreach_copy_([ts[i].view(-1) for i in idx], list(pieces))

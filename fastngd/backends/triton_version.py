"""Which Triton releases the kernels support: 3.2 and later (the tensor-descriptor-free
pointer arithmetic and ``tl.range`` they use are checked against 3.2 and newer)."""
from __future__ import annotations

import re

__all__ = ["MIN_TRITON", "triton_version_supported", "version_tuple"]

#: oldest triton release the kernels support.
MIN_TRITON = (3, 2)


def version_tuple(version: str) -> tuple[int, ...]:
    """The leading numeric components of a version string: ``"3.2.0+git1234"`` → ``(3, 2, 0)``,
    ``"3.10.0rc1"`` → ``(3, 10, 0)`` (a pre-release suffix ends the version)."""
    out = []
    for piece in version.split("+")[0].split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        out.append(int(digits.group()))
        if digits.end() < len(piece):
            break
    return tuple(out)


def triton_version_supported(version: str) -> bool:
    """``version_tuple(version) ≥ MIN_TRITON``."""
    return version_tuple(version) >= MIN_TRITON

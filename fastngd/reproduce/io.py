"""Output folders and JSON files of experiments: never overwrite silently, write atomically."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fastngd.atomic import atomic_write

__all__ = ["prepare_out_dir", "write_json"]


def prepare_out_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Create ``path`` or accept an empty existing folder.

    A folder that already holds files is refused with FileExistsError unless ``overwrite``
    (then its files may be replaced, others are left alone); a file at ``path`` is refused
    with NotADirectoryError.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"output folder {out} already exists and is not empty; choose another --out or "
            "pass --overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON through a temporary file renamed into place."""
    def write(handle: Any) -> None:
        json.dump(_clean(data), handle, indent=2, sort_keys=False)
        handle.write("\n")

    return atomic_write(path, write)

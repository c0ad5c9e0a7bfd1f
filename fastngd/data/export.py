"""Export of a benchmark to JSON Lines files with the hub's field names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastngd.data.files import split_path, write_jsonl_atomic
from fastngd.data.registry import get_benchmark


def export_benchmark(
    name: str, out_dir: str | Path, *, seed: int = 0, overwrite: bool = False
) -> list[Path]:
    """Write every config/split of benchmark ``name`` to ``{out_dir}/{config}/{split}.jsonl``.

    The files are read back by ``load_tofu(config, data_dir=out_dir)`` (TOFU-style) and
    ``load_muse(corpus, config, split, data_dir=out_dir)`` (MUSE-style). All rows are built
    before anything is written; when a target exists and ``overwrite`` is False a
    FileExistsError naming it is raised and nothing is written; each file is written to a
    temporary file and renamed, so no file is ever half-written. Returns the written paths.
    """
    benchmark = get_benchmark(name)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output path {str(out)!r} exists and is not a directory")
    plan: list[tuple[Path, list[dict[str, Any]]]] = []
    for config, splits in benchmark.splits.items():
        for split in splits:
            rows = benchmark.loader(config, split, None, seed)
            plan.append((split_path(out, config, split), rows))
    existing = [path for path, _ in plan if path.exists()]
    if existing and not overwrite:
        shown = ", ".join(str(p) for p in existing[:3])
        more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        raise FileExistsError(f"refusing to overwrite {shown}{more} (use overwrite=True)")
    return [write_jsonl_atomic(path, rows) for path, rows in plan]

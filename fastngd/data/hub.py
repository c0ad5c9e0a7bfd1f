"""Loading a split from the Hugging Face hub through ``datasets``, and the checked loader of a
split from the hub or a local folder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def load_hub_split(hub_id: str, config: str, split: str) -> list[dict[str, Any]]:
    """Rows of ``hub_id`` / ``config`` / ``split`` via ``datasets.load_dataset``.

    Any failure (no network, unknown split, missing ``datasets``) is re-raised as a
    RuntimeError that names the dataset, config and split and points to ``data_dir``.
    """
    try:
        import datasets  # type: ignore[import-untyped]

        dataset = datasets.load_dataset(hub_id, config, split=split)
        return [dict(row) for row in dataset]
    except Exception as exc:
        raise RuntimeError(
            f"could not load {hub_id!r} config {config!r} split {split!r} from the hub "
            f"({type(exc).__name__}: {exc}); read local files instead with --data-dir DIR "
            "(data_dir= in Python; `fastngd data export` writes such a folder)"
        ) from exc


def load_split_checked(
    hub_id: str,
    config: str,
    split: str,
    data_dir: Any,
    validate: Callable[..., None],
) -> list[dict[str, Any]]:
    """Rows of ``config``/``split`` from the hub (``data_dir`` None) or from the local folder
    ``data_dir`` (:func:`fastngd.data.files.read_local_split_located`), checked by
    ``validate(rows, config, split, source=..., locations=...)`` (local rows are named by
    file and line in its errors)."""
    if data_dir is None:
        rows = load_hub_split(hub_id, config, split)
        validate(rows, config, split)
        return rows
    from fastngd.data.files import read_local_split_located

    rows, path, where = read_local_split_located(data_dir, config, split)
    validate(rows, config, split, source=path, locations=where)
    return rows

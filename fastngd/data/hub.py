"""Loading a split from the Hugging Face hub through ``datasets``."""

from __future__ import annotations

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

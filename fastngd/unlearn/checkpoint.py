"""Whole-run checkpoints of an unlearning run, written atomically and verified on resume.

A checkpoint is one ``torch.save`` file holding everything a bit-identical continuation
needs: the model's ``state_dict``, the optimizer's ``state_dict`` (GeN learning-rate scale,
call counter and rule RNG included), the step counter, the data order of the current epoch,
the reference NLLs of NPO, the torch CPU (and CUDA) RNG states, the run's history and
evaluations, the best evaluation so far and the run's configuration.

Writing: the file goes to a temporary file in the same folder, is flushed to disk and
renamed over ``checkpoint.pt`` (``os.replace`` is atomic); then a small manifest
``checkpoint.pt.sha256`` (JSON: file name, size, SHA-256 of the bytes) is written the same
way. Reading checks the size and the SHA-256 against the manifest before unpickling (with
``torch.load(weights_only=True)``: tensors and plain containers only), so bytes flipped on
disk, a truncated or empty file and a file that is not a fastngd checkpoint are each
reported as one :class:`fastngd.errors.InputError` naming the file and what to do. A
checkpoint without a manifest (written by an older fastngd, or a crash between the two
renames) is read with a warning.

The same format holds the state of the best evaluation (``best.pt``) when a run keeps it.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from fastngd.atomic import atomic_write
from fastngd.errors import InputError

__all__ = [
    "BEST_NAME",
    "CHECKPOINT_NAME",
    "MANIFEST_SUFFIX",
    "checkpoint_exists",
    "config_mismatch",
    "load_checkpoint",
    "load_verified",
    "remove_checkpoint",
    "save_checkpoint",
    "save_verified",
]

CHECKPOINT_NAME = "checkpoint.pt"
"""File name of the checkpoint inside a run's checkpoint folder."""

BEST_NAME = "best.pt"
"""File name of the best evaluation's model state inside a run's checkpoint folder."""

MANIFEST_SUFFIX = ".sha256"
"""The manifest of ``X`` is ``X.sha256`` beside it."""

_REQUIRED = ("format", "config", "step", "model", "optimizer")

_START_OVER = (
    "resume from another copy, or start the run over (fastngd unlearn --overwrite without "
    "--resume, or delete {folder})"
)


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.name + MANIFEST_SUFFIX)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_verified(path: str | Path, payload: dict[str, Any]) -> Path:
    """``torch.save(payload)`` to ``path`` atomically, then its manifest (size and SHA-256)
    atomically beside it; returns ``path``."""
    target = Path(path)
    atomic_write(target, lambda handle: torch.save(payload, handle), binary=True)
    manifest = {"file": target.name, "bytes": target.stat().st_size, "sha256": _sha256(target)}
    atomic_write(_manifest_path(target),
                 lambda handle: handle.write(json.dumps(manifest, indent=1) + "\n"))
    return target


def _check_manifest(path: Path, what_to_do: str) -> None:
    """Compare ``path`` with its manifest (InputError on mismatch; a warning without one)."""
    manifest_path = _manifest_path(path)
    if not manifest_path.exists():
        warnings.warn(
            f"{path} has no checksum file {manifest_path.name} (written by an older fastngd, "
            "or interrupted right after the data was written): resuming without verifying it",
            stacklevel=3,
        )
        return
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        expected_size, expected_hash = int(manifest["bytes"]), str(manifest["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{manifest_path} is unreadable ({exc}); {what_to_do}") from exc
    size = path.stat().st_size
    if size != expected_size:
        raise InputError(
            f"{path} is {size} bytes but {manifest_path.name} says {expected_size} (truncated "
            f"or changed after it was written); {what_to_do}"
        )
    if _sha256(path) != expected_hash:
        raise InputError(
            f"{path} does not match its SHA-256 in {manifest_path.name} (the file is "
            f"corrupted); {what_to_do}"
        )


def load_verified(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The payload of ``path`` after checking it against its manifest; ``required`` keys
    must be present. Every failure is one InputError naming the file and what to do."""
    target = Path(path)
    what_to_do = _START_OVER.format(folder=target.parent)
    if not target.exists():
        raise InputError(f"{target} does not exist; {what_to_do}")
    if target.stat().st_size == 0:
        raise InputError(f"{target} is empty (0 bytes); {what_to_do}")
    _check_manifest(target, what_to_do)
    try:
        payload = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{target} is not a readable fastngd checkpoint ({first}); {what_to_do}"
        ) from exc
    if not isinstance(payload, dict) or any(key not in payload for key in required):
        raise InputError(
            f"{target} is not a fastngd unlearning checkpoint (it lacks "
            f"{[k for k in required if not isinstance(payload, dict) or k not in payload]}); "
            f"{what_to_do}"
        )
    return payload


def save_checkpoint(directory: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``directory/checkpoint.pt`` and its manifest; returns the path."""
    return save_verified(Path(directory) / CHECKPOINT_NAME, payload)


def checkpoint_exists(directory: str | Path) -> bool:
    """Whether ``directory`` holds a checkpoint (or the manifest of one)."""
    path = Path(directory) / CHECKPOINT_NAME
    return path.exists() or _manifest_path(path).exists()


def load_checkpoint(directory: str | Path) -> dict[str, Any] | None:
    """The verified payload of ``directory/checkpoint.pt``, or None when there is none (no
    file and no manifest). Raises :class:`fastngd.errors.InputError` for a checkpoint that
    is empty, truncated, corrupted or not a fastngd checkpoint."""
    if not checkpoint_exists(directory):
        return None
    return load_verified(Path(directory) / CHECKPOINT_NAME, _REQUIRED)


def remove_checkpoint(directory: str | Path) -> None:
    """Delete the files a run writes into its checkpoint folder (checkpoint, best state and
    their manifests), then the folder itself when nothing else is left in it."""
    folder = Path(directory)
    for name in (CHECKPOINT_NAME, BEST_NAME):
        for path in (folder / name, _manifest_path(folder / name)):
            path.unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def config_mismatch(
    saved: dict[str, Any], current: dict[str, Any], defaults: dict[str, Any] | None = None
) -> list[str]:
    """Human-readable differences between two run configurations (empty when equal).

    A key absent from ``saved`` (a checkpoint written before that setting existed) counts
    as its value in ``defaults`` when given.
    """
    defaults = defaults or {}
    out = []
    for key in sorted(set(saved) | set(current)):
        a = saved.get(key, defaults.get(key, "<absent>"))
        b = current.get(key, "<absent>")
        if a != b:
            out.append(f"{key}: checkpoint {a!r} vs now {b!r}")
    return out

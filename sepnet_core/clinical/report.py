"""Provenance of a prediction (``report.json``): input, checkpoints with hashes, versions, device, times."""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from sepnet_core import __version__
from sepnet_core.fileio import sha256_file

__all__ = ["VERSIONED_PACKAGES", "distribution_versions", "package_versions", "checkpoint_entry",
           "device_description", "timestamp"]

VERSIONED_PACKAGES: tuple[str, ...] = ("torch", "numpy", "SimpleITK", "pydicom", "python-gdcm", "nibabel",
                                       "scipy", "matplotlib")
"""Distributions whose versions a report records (besides sepnet_core and Python)."""


def distribution_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when it is not installed): the one lookup behind
    :func:`package_versions` and the book's reproducibility page (``sepnet_core.book.package_versions``)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def package_versions(names: Sequence[str] = VERSIONED_PACKAGES) -> dict[str, str | None]:
    """``{"sepnet_core": ..., "python": ..., "platform": ..., name: version or None if not installed}``."""
    return {"sepnet_core": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            **distribution_versions(names)}


def _config_hash(config: Any) -> str | None:
    """The training config's fingerprint (:meth:`TrainConfig.config_hash`), or None if it cannot be read."""
    from sepnet_core.training.config import TrainConfig

    try:
        return TrainConfig.from_dict(config).config_hash()
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


def checkpoint_entry(path: Path, member: Any, patch_size: Sequence[int]) -> dict[str, Any]:
    """Report entry of one ensemble member: file, SHA-256, model, intensity, crop, patch, seed, config hash.

    Args:
        path: The checkpoint file.
        member: Its :class:`~sepnet_core.training.checkpoint.LoadedModel`.
        patch_size: The member's sliding-window patch (d, h, w).
    """
    config = member.meta.get("config") or {}
    return {
        "path": str(Path(path).resolve()),
        "sha256": sha256_file(path),
        "model": member.model_config.to_dict(),
        "intensity": member.intensity.to_dict(),
        "crop_yx": list(member.crop_yx) if member.crop_yx is not None else None,
        "patch_size": [int(p) for p in patch_size],
        "epoch": member.meta.get("epoch"),
        "best_metric": member.meta.get("best_metric"),
        "seed": config.get("seed") if isinstance(config, dict) else None,
        "config_hash": _config_hash(config),
        "trained_with": member.meta.get("package_version"),
    }


def device_description(device: Any) -> str:
    """Human-readable name of a torch device: the GPU's name for CUDA, else the CPU/platform."""
    kind = getattr(device, "type", str(device))
    if kind == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return f"{kind}: {platform.processor() or platform.machine()}"


def timestamp() -> str:
    """Local time with time zone, ISO 8601, seconds."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")

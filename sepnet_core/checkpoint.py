"""Self-describing checkpoints: written atomically, read without running pickled code.

A checkpoint is a ``torch.save`` file holding only tensors and plain values::

    {"format_version": 1, "model_config": {...}, "intensity": {...}, "train_config": {...},
     "organs": [[1, "brain_stem"], ...], "model_state": {...}, "optimizer_state": {...} | None,
     "scheduler_state": {...} | None, "rng_state": {...} | None, "epoch": int, "step": int,
     "best_metric": float, "val_metrics": {...}, "package_version": "0.1.0",
     "prior_correction": {"scale": float, "log_frequency": [...]} | None}

``prior_correction`` (optional, absent in older files) records a prior correction already folded into
the classifier bias (:mod:`sepnet_core.training.prior`); the weights are used as they are.

Everything needed to use the model travels with it (architecture, intensity transform, in-plane crop,
organ table), so :func:`load_model` never consults today's defaults. Files are written to a temporary
name in the same folder, flushed to disk and renamed (a crash leaves the old file or the new one, never
half of one). Loading uses ``torch.load(weights_only=True)``: a file that would build arbitrary Python
objects (and so could run code) is refused with :class:`~sepnet_core.errors.CheckpointError`.

This module is shared by training (which writes checkpoints) and inference (which reads them); it does
not import :mod:`sepnet_core.training`. ``sepnet_core.training.checkpoint`` re-exports it.

Example:
    >>> from sepnet_core.training import preset  # doctest: +SKIP
    >>> cfg = preset("smoke")
    >>> path = save_checkpoint(tmp / "m.pt", cfg.model.build(), cfg)  # doctest: +SKIP
    >>> loaded = load_model(path)  # doctest: +SKIP
    >>> loaded.model_config == cfg.model, loaded.crop_yx  # doctest: +SKIP
    (True, None)
"""

from __future__ import annotations

import math
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sepnet_core import __version__
from sepnet_core.errors import CheckpointError
from sepnet_core.fileio import atomic_write
from sepnet_core.intensity import Intensity, get_intensity, intensity_from_dict
from sepnet_core.models import ModelConfig
from sepnet_core.organs import ORGANS

if TYPE_CHECKING:  # the training package is not imported at run time (inference must not need it)
    from sepnet_core.training.config import TrainConfig

__all__ = ["FORMAT_VERSION", "LoadedModel", "save_checkpoint", "load_checkpoint", "load_model", "unwrap"]

FORMAT_VERSION = 1
"""Version of the checkpoint layout written by this package; newer files are refused."""

_REQUIRED = ("format_version", "model_config", "intensity", "train_config", "organs", "model_state")


def unwrap(model: nn.Module) -> nn.Module:
    """The plain network inside a ``DistributedDataParallel``/``DataParallel`` wrapper (or ``model``)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def _organ_table() -> list[list[Any]]:
    return [[o.label, o.key] for o in ORGANS]


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    config: TrainConfig,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    rng_state: dict[str, Any] | None = None,
    epoch: int = 0,
    step: int = 0,
    best_metric: float = math.nan,
    val_metrics: dict[str, float] | None = None,
    prior_correction: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, flush + fsync, rename); replaces ``path``.

    Args:
        path: Destination file (``.pt``); its folder must exist.
        model: The network (a DDP wrapper is unwrapped); its weights are stored on the CPU.
        config: The run's :class:`TrainConfig` (gives the model config, intensity transform and crop).
        optimizer: Optimiser whose state is stored for resuming (optional).
        scheduler: Learning-rate scheduler whose state is stored (optional).
        rng_state: Random states from :func:`sepnet_core.training.seeding.rng_state` (optional; under
            ``torchrun`` a dict ``{"ranks": [state of rank 0, ...]}``).
        epoch: Epochs completed.
        step: Optimiser steps completed.
        best_metric: Best validation score so far (NaN if none).
        val_metrics: Validation numbers of this epoch (plain floats).
        prior_correction: The prior correction folded into these weights (plain values), or None.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    payload = {
        "format_version": FORMAT_VERSION,
        "model_config": config.model.to_dict(),
        "intensity": get_intensity(config.intensity).to_dict(),
        "train_config": config.to_dict(),
        "organs": _organ_table(),
        "model_state": state,
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        "rng_state": rng_state,
        "epoch": int(epoch),
        "step": int(step),
        "best_metric": float(best_metric),
        "val_metrics": {k: float(v) for k, v in (val_metrics or {}).items()},
        "package_version": __version__,
        "prior_correction": prior_correction,
    }
    with atomic_write(path, overwrite=True) as tmp:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
    return path


def _one_line(exc: BaseException, limit: int = 200) -> str:
    """``exc``'s message as one line of at most ``limit`` characters."""
    text = " ".join(t.strip() for t in str(exc).splitlines() if t.strip()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint with ``torch.load(weights_only=True)``; nothing pickled is executed.

    Args:
        path: A file written by :func:`save_checkpoint`.
        map_location: Where tensors are placed (default CPU).

    Returns:
        The checkpoint dict (keys as in the module docstring).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: (one line naming the file) the file holds pickled objects other than tensors
            and plain values (possibly code), is not a readable checkpoint, lacks required keys, has a
            newer ``format_version`` than this package reads, or was made for another organ table.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint file does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        detail = f"it asks for {found.group(1)}" if found else _one_line(exc)
        raise CheckpointError(
            f"{path}: refused to load: the file contains pickled Python objects that could run code "
            f"({detail}); only tensors and plain values are accepted"
        ) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, AttributeError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({_one_line(exc)})") from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path}: not a SepNet-Book checkpoint (no 'format_version'; a bare "
                              "state dict?)")
    version = ckpt["format_version"]
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {version} is newer than this package reads "
            f"({FORMAT_VERSION}, sepnet {__version__}); upgrade sepnet-book"
        )
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks key(s) {missing}")
    organs = [list(o) for o in ckpt["organs"]]
    if organs != _organ_table():
        raise CheckpointError(f"{path}: checkpoint was trained with another organ table "
                              f"({len(organs)} organs)")
    return ckpt


@dataclass(frozen=True)
class LoadedModel:
    """A trained network ready for inference, with everything needed to feed it.

    Attributes:
        model: The network in eval mode on the requested device; input ``(B, 1, D, H, W)`` of
            intensities from ``intensity``, output LOGITS ``(B, 23, D, H, W)``.
        model_config: Its architecture.
        intensity: The HU -> network intensity transform it was trained with (SLF or Window).
        crop_yx: In-plane centre crop/pad (y, x) voxels used in training, or None.
        meta: ``path``, ``epoch``, ``step``, ``best_metric``, ``val_metrics``, ``package_version``,
            ``config`` (the training config dict; e.g. ``meta["config"]["patch_size"]``),
            ``prior_correction`` (None, or the correction folded into the weights).
    """

    model: nn.Module
    model_config: ModelConfig
    intensity: Intensity
    crop_yx: tuple[int, int] | None
    meta: dict[str, Any] = field(default_factory=dict)


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedModel:
    """Build the network a checkpoint describes and load its weights.

    Args:
        path: Checkpoint file (``best.pt`` or ``last.pt`` of a run).
        device: Device of the returned model.

    Returns:
        A :class:`LoadedModel` (model in eval mode).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: every case of :func:`load_checkpoint`, an invalid model config or intensity
            dict, or weights that do not fit the stored model config (another model's checkpoint).
    """
    path = Path(path)
    ckpt = load_checkpoint(path)
    try:
        model_config = ModelConfig.from_dict(ckpt["model_config"])
        intensity = intensity_from_dict(ckpt["intensity"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model or intensity description ({_one_line(exc)})") from None
    model = model_config.build()
    try:
        model.load_state_dict(ckpt["model_state"], strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{path}: weights do not match the stored model config "
            f"({model_config.name}, base {model_config.base}): {_one_line(exc)}"
        ) from None
    crop = (ckpt["train_config"].get("data") or {}).get("crop_yx")
    meta = {
        "path": str(path),
        "epoch": ckpt.get("epoch"),
        "step": ckpt.get("step"),
        "best_metric": ckpt.get("best_metric"),
        "val_metrics": ckpt.get("val_metrics", {}),
        "package_version": ckpt.get("package_version"),
        "config": ckpt["train_config"],
        "prior_correction": ckpt.get("prior_correction"),
    }
    return LoadedModel(
        model=model.to(device).eval(),
        model_config=model_config,
        intensity=intensity,
        crop_yx=tuple(int(v) for v in crop) if crop is not None else None,
        meta=meta,
    )

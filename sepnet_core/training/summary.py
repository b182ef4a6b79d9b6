"""``summary.json``: how a finished training run was made and where it ended.

Written atomically by :func:`sepnet_core.training.fit` as the last file of a run folder, so its presence
means the run finished (a resumed run removes the old one first). It records what is needed to tell
whether two runs should agree bit for bit: the config hash and seed, the versions of Python, torch,
numpy and SimpleITK, the device, the number of CPU threads and whether deterministic algorithms were
on; and what came out: the best epoch and its validation score, the last step, the SHA-256 of both
checkpoints and the wall time.

Example:
    >>> import json
    >>> summary = json.loads((run / "summary.json").read_text())  # doctest: +SKIP
    >>> summary["config_hash"], summary["best"]["epoch"]  # doctest: +SKIP
    ('3f9a0c1b2d4e', 2)
"""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from sepnet_core import __version__
from sepnet_core.fileio import sha256_file, write_json_atomic
from sepnet_core.training.checkpoint import load_checkpoint
from sepnet_core.training.config import TrainConfig

__all__ = ["SUMMARY_NAME", "versions", "write_summary"]

SUMMARY_NAME = "summary.json"
"""File name of the run summary inside a run folder."""


def versions() -> dict[str, str]:
    """Versions of the software a run's numbers depend on (package, Python, torch, numpy, SimpleITK)."""
    return {
        "sepnet_core": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "SimpleITK": sitk.Version.VersionString(),
    }


def _number(value: Any) -> float | None:
    """A float for JSON, with NaN (no validation yet) as null."""
    value = float(value)
    return None if math.isnan(value) else value


def write_summary(
    out: Path,
    config: TrainConfig,
    *,
    device: torch.device,
    world_size: int,
    amp: bool,
    resumed_from_epoch: int | None,
    wall_time_s: float,
) -> Path:
    """Write ``out/summary.json`` for a finished run (``last.pt`` must exist).

    Args:
        out: The run folder.
        config: The run's configuration.
        device: Where it trained.
        world_size: Number of processes (1 without ``torchrun``).
        amp: Whether bf16 autocast was actually used.
        resumed_from_epoch: Epoch this invocation resumed from, or None for a fresh run.
        wall_time_s: Seconds this invocation took (set-up, training, validation, checkpoints).

    Returns:
        Path of the summary. ``best`` is null when no epoch produced a validation score (no
        ``best.pt``).
    """
    last = load_checkpoint(out / "last.pt")
    best = load_checkpoint(out / "best.pt") if (out / "best.pt").is_file() else None
    summary = {
        "sepnet_version": __version__,
        "config_hash": config.config_hash(),
        "seed": config.seed,
        "versions": versions(),
        "device": str(device),
        "world_size": int(world_size),
        "torch_threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "amp": bool(amp),
        "epochs": int(last["epoch"]),
        "steps": int(last["step"]),
        "best": None if best is None else {
            "epoch": int(best["epoch"]),
            "step": int(best["step"]),
            "select_by": config.select_by,
            "metric": _number(best["best_metric"]),
            "val_metrics": {k: _number(v) for k, v in (best.get("val_metrics") or {}).items()},
        },
        "checkpoints": {name: sha256_file(out / name) for name in ("best.pt", "last.pt")
                        if (out / name).is_file()},
        "resumed_from_epoch": resumed_from_epoch,
        "wall_time_s": round(float(wall_time_s), 3),
    }
    return write_json_atomic(out / SUMMARY_NAME, summary, overwrite=True)

"""Training: configuration and presets, the loop (:func:`fit`), checkpoints, seeding and torchrun support.

Example:
    >>> from sepnet_core.training import preset, apply_overrides, fit, load_model  # doctest: +SKIP
    >>> cfg = apply_overrides(preset("cpu", data_root="phantom"), ["epochs=4"])  # doctest: +SKIP
    >>> best = fit(cfg, "runs/cpu-sepnet")  # doctest: +SKIP
    >>> loaded = load_model(best)  # doctest: +SKIP
"""

from __future__ import annotations

from sepnet_core.training.checkpoint import (
    FORMAT_VERSION,
    LoadedModel,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from sepnet_core.training.config import (
    PRESETS,
    DataConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    preset,
)
from sepnet_core.training.loop import LOG_COLUMNS, RUN_FILES, fit

__all__ = [
    "FORMAT_VERSION",
    "LOG_COLUMNS",
    "PRESETS",
    "RUN_FILES",
    "DataConfig",
    "LoadedModel",
    "OptimConfig",
    "TrainConfig",
    "apply_overrides",
    "fit",
    "load_checkpoint",
    "load_model",
    "preset",
    "save_checkpoint",
]

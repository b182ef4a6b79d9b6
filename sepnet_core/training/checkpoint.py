"""Checkpoints (moved to :mod:`sepnet_core.checkpoint`, shared by training and inference); this module
re-exports its names at their old import path."""

from __future__ import annotations

from sepnet_core.checkpoint import (
    FORMAT_VERSION,
    LoadedModel,
    load_checkpoint,
    load_model,
    save_checkpoint,
    unwrap,
)

__all__ = ["FORMAT_VERSION", "LoadedModel", "save_checkpoint", "load_checkpoint", "load_model", "unwrap"]

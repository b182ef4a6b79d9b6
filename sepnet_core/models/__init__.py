"""Segmentation networks: 3D-SepNet and the reference 3D U-Net.

Front door: ``build_model(name="sepnet", **kwargs)``; every network maps ``(B, C, D, H, W)`` float
input (D = z slices, H = y, W = x; D, H, W divisible by 8) to LOGITS ``(B, num_classes, D, H, W)``.

Blocks run a fast path by default (channels-last convolutions, fused instance norm + ReLU;
:mod:`sepnet_core.models.fused`); :func:`set_fast_path` switches a model to the plain module-by-module
path, which gives the same numbers up to float rounding. :func:`tune_cpu_allocator` is an opt-in
process setting that speeds up CPU runs (:mod:`sepnet_core.models.runtime`).

Example:
    >>> from sepnet_core.models import build_model, count_parameters
    >>> count_parameters(build_model("unet"))
    9179207
"""

from __future__ import annotations

from sepnet_core.models.blocks import DIRECTIONS, ConvNormAct, SeparableResBlock, set_fast_path
from sepnet_core.models.config import MODEL_NAMES, MODELS, ModelConfig, build_model, count_parameters
from sepnet_core.models.fused import instance_norm_relu
from sepnet_core.models.runtime import tune_cpu_allocator
from sepnet_core.models.sepnet import SepNet3D
from sepnet_core.models.unet import UNet3D

__all__ = [
    "DIRECTIONS",
    "MODELS",
    "MODEL_NAMES",
    "ConvNormAct",
    "ModelConfig",
    "SepNet3D",
    "SeparableResBlock",
    "UNet3D",
    "build_model",
    "count_parameters",
    "instance_norm_relu",
    "set_fast_path",
    "tune_cpu_allocator",
]

"""Validation during training: whole-volume inference on the validation split and per-organ Dice.

Each prepared validation case (already cropped and intensity-transformed like the training data) is
segmented with :func:`sepnet_core.inference.sliding.predict_volume` and compared with its label on the
cropped grid (organ voxels outside the crop, if any, are not counted). HD95 is left to the evaluation
stage: Dice is what selects the best checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from sepnet_core.device import resolve_amp
from sepnet_core.inference.sliding import predict_volume
from sepnet_core.metrics import dice, weighted_average
from sepnet_core.organs import ORGANS
from sepnet_core.training.data import PreparedCase

__all__ = ["validate", "metric_names"]


def metric_names() -> list[str]:
    """Keys of :func:`validate`'s result, in log-column order."""
    return ["mean_dice", "weighted_dice"] + [f"dice_{o.key}" for o in ORGANS]


@torch.no_grad()
def validate(
    model: nn.Module,
    cases: Sequence[PreparedCase],
    patch_size: Sequence[int],
    mode: str = "gaussian",
    device: torch.device | str = "cpu",
    amp: bool | None = False,
    batch_size: int = 1,
    overlap: float | None = None,
) -> dict[str, float]:
    """Segment every case and score it.

    Args:
        model: The network (a plain module, not a DDP wrapper); put in eval mode here and restored to
            its previous mode afterwards.
        cases: Prepared validation cases.
        patch_size: Sliding-window size (d, h, w) voxels.
        mode: ``predict_volume`` mode, "gaussian" or "reference".
        device: Device to run on.
        amp: bfloat16 autocast: True, False, or None for the device's default; resolved by
            :func:`sepnet_core.device.resolve_amp`, the rule ``sepnet predict`` and the book's evaluation
            use, so the logged Dice is what they reproduce with the same setting and batch size.
        batch_size: Windows per forward pass.
        overlap: "gaussian" mode: fraction of a window shared with its neighbour (fewer windows when
            smaller); ``None`` for :func:`~sepnet_core.inference.sliding.predict_volume`'s default.

    Returns:
        ``{"mean_dice": ..., "weighted_dice": ..., "dice_<organ key>": ...}``: per-organ Dice averaged
        over cases (NaN where an organ is absent from all cases and never predicted), their unweighted
        mean and the StructSeg importance-weighted mean (NaN organs skipped). All NaN without cases.
    """
    if not cases:
        return {name: math.nan for name in metric_names()}
    was_training = model.training
    model.eval()
    rows = []
    try:
        for case in cases:
            # float32 probabilities, as `sepnet predict` (inference.ensemble) uses: float16 rounding
            # turns near-ties into different argmax labels, and the logged Dice must be what a user
            # reproduces with predict + evaluate (tests/test_validation_vs_evaluate.py).
            probs = predict_volume(model, case.image, patch_size, overlap=overlap, mode=mode,
                                   batch_size=batch_size, device=device, amp=resolve_amp(amp, device),
                                   out_dtype=np.float32)
            pred = probs.argmax(axis=0).astype(np.uint8)
            for organ in ORGANS:
                rows.append((case.case_id, organ.label, organ.key,
                             dice(pred == organ.label, case.label == organ.label)))
    finally:
        model.train(was_training)
    table = pd.DataFrame(rows, columns=["case", "label", "organ", "dice"])
    per_organ = table.groupby("label")["dice"].mean()
    result = {
        "mean_dice": float(per_organ.mean()) if per_organ.notna().any() else math.nan,
        "weighted_dice": weighted_average(table, "dice"),
    }
    for organ in ORGANS:
        result[f"dice_{organ.key}"] = float(per_organ.get(organ.label, math.nan))
    return result

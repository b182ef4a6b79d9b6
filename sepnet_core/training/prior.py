"""Post-hoc prior correction of a trained network (ours; ``TrainConfig.prior_scale_max``).

The class-weighted cross-entropy of the exp-log and ATH losses weighs a voxel of class c
``(N_bg / N_c)^0.5`` times a background voxel, so a network trained with it labels an uncertain voxel
as organ: on the phantom its predicted foreground is 1.5-1.6x the reference on the worst test cases.
The weights are also what make it learn fast (without them it barely learns in the cpu budget), so
they stay in training and are corrected for afterwards, by logit adjustment: the classifier's bias
of class c gets ``k * log f_c`` added, with ``f_c`` the frequency of class c among the training label
voxels (``k = 0``: no change; larger ``k`` shifts uncertain voxels towards the frequent classes,
background first).

``k`` is chosen on the validation cases, never on the test cases: for every ``k`` of the scan
``0, step, ..., k_max`` the foreground (all organs) of each validation case is counted and compared
with the reference foreground, and the ``k`` of least mean ``|log(predicted / reference)|`` over the
cases is kept (least volume error, not best Dice: on the probes the Dice choice left 1-2 of 20 test
cases over the gate's 30 %, the volume choice none, for 0.01-0.02 of test mean Dice). The scan labels
each voxel ``argmax_c(log p_c + k log f_c)`` from one sliding-window pass of probabilities ``p``; that
equals what the corrected network predicts wherever one window covers the voxel (softmax keeps the
argmax of the shifted logits) and differs only by the blending of overlapping windows elsewhere, so
the corrected network is validated once more, exactly, and that is the score the run reports.

:func:`correct_checkpoint` does it all for a run's ``best.pt`` and writes ``prior_correction.json``;
``fit`` calls it after the last epoch. A checkpoint that already holds a correction is left as it is,
so a resumed run is corrected once.

Example:
    >>> log_f = np.log(np.array([0.9, 0.1]))
    >>> scales = scale_grid(0.5, 0.25)
    >>> logp = np.log(np.array([[[[0.6, 0.3]]], [[[0.4, 0.7]]]]))  # 2 classes, 1 x 1 x 2 voxels
    >>> foreground_counts(logp, log_f, scales).tolist()  # voxels labelled as class 1 at each k
    [1, 1, 0]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sepnet_core.checkpoint import load_checkpoint, save_checkpoint
from sepnet_core.device import resolve_amp
from sepnet_core.fileio import write_json_atomic
from sepnet_core.inference.sliding import predict_volume

if TYPE_CHECKING:
    from sepnet_core.training.config import TrainConfig
    from sepnet_core.training.data import PreparedCase

__all__ = [
    "PRIOR_FILE", "scale_grid", "class_log_frequencies", "foreground_counts", "volume_errors",
    "choose_scale", "classifier", "fold_into_bias", "correct_checkpoint",
]

PRIOR_FILE = "prior_correction.json"
"""File of a run folder (and of its results folder) describing the correction applied to ``best.pt``."""


def scale_grid(scale_max: float, step: float) -> np.ndarray:
    """The scanned scales ``0, step, 2 step, ..., scale_max`` (``scale_max`` included up to rounding)."""
    if step <= 0 or scale_max < 0:
        raise ValueError(f"need step > 0 and scale_max >= 0, got step={step!r}, scale_max={scale_max!r}")
    count = int(math.floor(scale_max / step + 1e-9)) + 1
    return np.round(np.arange(count) * step, 10)


def class_log_frequencies(labels: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """``log f_c`` for c = 0..num_classes-1: natural log of each class's share of all label voxels.

    Args:
        labels: Label maps (any shape, integer classes ``0..num_classes-1``), e.g. the training cases.
        num_classes: Classes including background (23 for StructSeg task 1).

    Returns:
        ``(num_classes,)`` float64; a class absent from every map counts as one voxel (finite log).
    """
    counts = np.zeros(num_classes, dtype=np.float64)
    for label in labels:
        counts += np.bincount(np.asarray(label).ravel(), minlength=num_classes)[:num_classes]
    if counts.sum() == 0:
        raise ValueError("no label voxels to count class frequencies from")
    counts = np.maximum(counts, 1.0)
    return np.log(counts / counts.sum())


def foreground_counts(log_probs: np.ndarray, log_freq: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """Voxels labelled as any organ (class > 0) at each scale: ``argmax_c(log p_c + k log f_c) > 0``.

    Args:
        log_probs: ``(C, z, y, x)`` log-probabilities of one case (``-inf`` allowed).
        log_freq: ``(C,)`` :func:`class_log_frequencies`.
        scales: The scales ``k``.

    Returns:
        ``(len(scales),)`` int64 voxel counts.
    """
    shift = np.asarray(log_freq, dtype=np.float32).reshape(-1, *([1] * (log_probs.ndim - 1)))
    return np.array([int(np.count_nonzero(np.argmax(log_probs + np.float32(k) * shift, axis=0)))
                     for k in scales], dtype=np.int64)


def volume_errors(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mean over cases of ``|log(predicted / reference)|`` foreground volume, for each scale.

    Args:
        predicted: ``(cases, scales)`` predicted foreground voxel counts.
        reference: ``(cases,)`` reference foreground voxel counts.

    Returns:
        ``(scales,)``; ``inf`` for a scale at which some case has no predicted organ voxel.

    Raises:
        ValueError: a case without reference organ voxels (its volume error is undefined) or
            mismatched shapes.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if predicted.ndim != 2 or reference.shape != (predicted.shape[0],):
        raise ValueError(f"predicted must be (cases, scales) and reference (cases,), got "
                         f"{predicted.shape} and {reference.shape}")
    if (reference <= 0).any():
        raise ValueError(f"{int((reference <= 0).sum())} validation case(s) have no reference organ voxel: "
                         "the volume error is undefined")
    with np.errstate(divide="ignore"):
        return np.abs(np.log(predicted / reference[:, None])).mean(axis=0)


def choose_scale(scales: Sequence[float], errors: Sequence[float]) -> float:
    """The scale of least volume error (the smallest such scale on ties).

    When every scale leaves some validation case without organ voxels (all errors infinite: a network
    that labels no organ, e.g. a soft-Dice run collapsed to background), no scale is better than
    another and 0 (no correction) is returned.
    """
    errors = np.asarray(errors, dtype=np.float64)
    if len(errors) != len(scales) or len(errors) == 0:
        raise ValueError(f"need one error per scale, got {len(errors)} errors for {len(scales)} scales")
    if not np.isfinite(errors).any():
        return 0.0
    return float(scales[int(np.argmin(errors))])


def classifier(model: torch.nn.Module) -> torch.nn.Conv3d:
    """The network's last 1x1x1 convolution (its ``head``'s final layer), which holds the class biases."""
    head = getattr(model, "head", None)
    layer = head[-1] if isinstance(head, torch.nn.Sequential) and len(head) else None
    if not isinstance(layer, torch.nn.Conv3d) or layer.bias is None:
        raise ValueError(f"{type(model).__name__} has no head ending in a Conv3d with a bias")
    return layer


@torch.no_grad()
def fold_into_bias(model: torch.nn.Module, scale: float, log_freq: np.ndarray) -> None:
    """Add ``scale * log_freq`` to the classifier's bias, in place (the corrected network)."""
    bias = classifier(model).bias
    if bias.shape != (len(log_freq),):
        raise ValueError(f"classifier has {bias.shape[0]} classes, log_freq {len(log_freq)}")
    bias += torch.as_tensor(scale * np.asarray(log_freq), dtype=bias.dtype, device=bias.device)


def correct_checkpoint(
    checkpoint: str | Path,
    config: TrainConfig,
    train: Sequence[PreparedCase],
    valid: Sequence[PreparedCase],
    device: torch.device | str = "cpu",
    amp: bool | None = False,
) -> dict[str, Any]:
    """Choose the prior correction of ``checkpoint`` on ``valid``, fold it in and record it.

    Rewrites ``checkpoint`` (atomically) with the corrected classifier bias, its ``best_metric`` and
    ``val_metrics`` replaced by the corrected network's exact validation, and a ``prior_correction``
    entry; writes ``prior_correction.json`` beside it. Does nothing to a checkpoint that already has a
    correction with its record beside it (returns the record); one whose record is gone is un-corrected
    and corrected again.

    Args:
        checkpoint: A run's ``best.pt``.
        config: The run's config (patch size, validation mode and overlap, scan range, batch size).
        train: Prepared training cases (their labels give the class frequencies).
        valid: Prepared validation cases (at least one).
        device: Device of the validation passes.
        amp: bf16 autocast for the scan and the validation: True, False, or None for the device's
            default (:func:`sepnet_core.device.resolve_amp`, the rule of the run's validation).

    Returns:
        The record written to ``prior_correction.json``: ``scale``, ``scales``, ``volume_error`` (one
        per scale), ``foreground_ratio`` (mean predicted / reference per scale), ``log_frequency``,
        ``val_mean_dice_uncorrected`` and ``val_mean_dice`` (corrected), ``val_weighted_dice``.
    """
    from sepnet_core.training.validation import validate

    checkpoint = Path(checkpoint)
    record_path = checkpoint.with_name(PRIOR_FILE)
    ckpt = load_checkpoint(checkpoint)
    done = ckpt.get("prior_correction")
    if done is not None and record_path.is_file():
        return json.loads(record_path.read_text())
    if not valid:
        raise ValueError(f"{checkpoint}: the prior correction needs validation cases")
    model = config.model.build()
    model.load_state_dict(ckpt["model_state"])
    if done is not None:  # corrected, but its record is gone: undo the fold and choose again
        fold_into_bias(model, -float(done["scale"]), np.asarray(done["log_frequency"]))
        ckpt["val_metrics"] = {"mean_dice": math.nan}  # the uncorrected score is not known any more
    model.to(device).eval()
    log_freq = class_log_frequencies([c.label for c in train], config.model.num_classes)
    scales = scale_grid(config.prior_scale_max, config.prior_scale_step)
    predicted, reference = [], []
    with torch.no_grad():
        for case in valid:
            probs = predict_volume(model, case.image, config.patch_size, overlap=config.val_overlap,
                                   mode=config.val_mode, batch_size=config.batch_size, device=device,
                                   amp=resolve_amp(amp, device), out_dtype=np.float32)
            with np.errstate(divide="ignore"):
                predicted.append(foreground_counts(np.log(probs), log_freq, scales))
            reference.append(int(np.count_nonzero(case.label)))
            del probs
    predicted_arr, reference_arr = np.array(predicted), np.array(reference)
    errors = volume_errors(predicted_arr, reference_arr)
    scale = choose_scale(scales, errors)
    uncorrected = float(ckpt["val_metrics"].get("mean_dice", math.nan))
    fold_into_bias(model, scale, log_freq)
    scores = validate(model, valid, config.patch_size, mode=config.val_mode, device=device, amp=amp,
                      batch_size=config.batch_size, overlap=config.val_overlap)
    record = {
        "scale": scale,
        "scales": [float(k) for k in scales],
        "volume_error": [float(e) if math.isfinite(e) else None for e in errors],
        "foreground_ratio": [float(r) for r in (predicted_arr / reference_arr[:, None]).mean(axis=0)],
        "log_frequency": [float(v) for v in log_freq],
        "val_mean_dice_uncorrected": uncorrected,
        "val_mean_dice": float(scores["mean_dice"]),
        "val_weighted_dice": float(scores["weighted_dice"]),
        "validation_cases": [c.case_id for c in valid],
    }
    # The record first: a checkpoint that holds a correction always has its record beside it.
    write_json_atomic(record_path, record, overwrite=True)
    save_checkpoint(checkpoint, model.cpu(), config, epoch=int(ckpt["epoch"]), step=int(ckpt["step"]),
                    best_metric=float(scores[config.select_by]), val_metrics=scores,
                    prior_correction={"scale": scale, "log_frequency": record["log_frequency"]})
    return record

"""``segment``: the library's one entry point for "CT in, segmentation out".

:func:`segment` takes a CT (a HU array, or a NIfTI file / DICOM folder / zip read with
:func:`sepnet_core.data.inputs.read_input`) and checkpoints (paths, or members already loaded with
:func:`load_members` so that a loop over cases loads them once), runs the ensemble
(:func:`sepnet_core.inference.ensemble.predict_case`) and returns a :class:`Segmentation`. ``sepnet
predict`` writes its outputs from it, and the book scores splits with it
(:func:`sepnet_core.evaluation.evaluate_split`).

Example:
    >>> from sepnet_core.inference import segment  # doctest: +SKIP
    >>> result = segment("ct.nii.gz", ["runs/a/best.pt", "runs/b/best.pt"], device="cpu")  # doctest: +SKIP
    >>> result.labels.shape == result.geometry.shape, result.uncertainty_kind  # doctest: +SKIP
    (True, 'vote_entropy')
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sepnet_core.checkpoint import LoadedModel, load_model
from sepnet_core.device import pick_device, resolve_amp
from sepnet_core.inference.ensemble import predict_case
from sepnet_core.inference.sliding import DEFAULT_OVERLAP, MODES
from sepnet_core.organs import ORGANS

__all__ = ["Segmentation", "default_batch_size", "load_members", "organ_labels", "segment"]

Checkpoint = str | os.PathLike[str] | LoadedModel

#: Windows per forward pass when not given: 1 on the CPU (the streaming path), 4 on an accelerator.
DEFAULT_BATCH = {"cpu": 1, "accelerator": 4}


@dataclass(frozen=True)
class Segmentation:
    """Result of :func:`segment`; every volume is on the input's (z, y, x) voxel grid.

    Attributes:
        labels: uint8 (z, y, x) labels 0..22: argmax of the members' mean probability (organs outside
            ``roi_subset``, if given, are set to background 0).
        uncertainty: float32 (z, y, x), nats: the members' vote entropy, or for one member the predictive
            entropy of its probabilities (``uncertainty_kind`` says which).
        uncertainty_kind: ``"vote_entropy"`` or ``"predictive_entropy"``.
        num_members: Ensemble size M.
        geometry: The input's :class:`~sepnet_core.data.geometry.Geometry` (None for a bare array).
        probabilities: float32 (C, z, y, x) mean probability if requested, else None.
        predictive_entropy: float32 (z, y, x), nats: entropy of the mean probability (for one member the
            same array as ``uncertainty``).
        member_labels: uint8 (M, z, y, x) each member's own argmax if requested, else None.
        settings: How it was made: device, amp, mode, overlap, batch_size, stream, roi_subset.
    """

    labels: np.ndarray
    uncertainty: np.ndarray
    uncertainty_kind: str
    num_members: int
    geometry: Any = None
    probabilities: np.ndarray | None = None
    predictive_entropy: np.ndarray | None = None
    member_labels: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def default_batch_size(device: torch.device | str) -> int:
    """Windows per forward pass when not given (:data:`DEFAULT_BATCH`)."""
    return DEFAULT_BATCH["cpu" if torch.device(device).type == "cpu" else "accelerator"]


def load_members(checkpoints: Iterable[Checkpoint], device: str | torch.device = "auto") -> list[LoadedModel]:
    """Load checkpoint files (safely, ``weights_only``) onto ``device``; LoadedModel items are kept.

    Raises:
        FileNotFoundError, CheckpointError: see :func:`sepnet_core.checkpoint.load_model`.
        ValueError: no checkpoint, or an unknown / unavailable device.
    """
    items = list(checkpoints)
    if not items:
        raise ValueError("no checkpoint given")
    torch_device = device if isinstance(device, torch.device) else pick_device(device)
    return [item if isinstance(item, LoadedModel) else load_model(Path(item), device=torch_device)
            for item in items]


def organ_labels(roi_subset: Iterable[str] | None) -> tuple[int, ...] | None:
    """Labels of the organ keys in ``roi_subset`` (None: all organs).

    Raises:
        ValueError: an unknown organ key (the message lists the valid keys).
    """
    if roi_subset is None:
        return None
    by_key = {o.key: o.label for o in ORGANS}
    keys = list(roi_subset)
    unknown = [k for k in keys if k not in by_key]
    if unknown or not keys:
        raise ValueError(f"unknown organ(s) {', '.join(map(repr, unknown)) or '(none given)'}; valid organs: "
                         f"{', '.join(by_key)}")
    return tuple(sorted({by_key[k] for k in keys}))


def segment(
    ct: Any,
    checkpoints: Sequence[Checkpoint],
    *,
    device: str | torch.device = "auto",
    amp: bool | None = None,
    mode: str = "gaussian",
    overlap: float | None = None,
    batch_size: int | None = None,
    probabilities: bool = False,
    member_labels: bool = False,
    roi_subset: Iterable[str] | None = None,
    series_uid: str | None = None,
    stream: bool | None = None,
    progress: Callable[[int], object] | None = None,
) -> Segmentation:
    """Segment the 22 organs-at-risk of one CT with one checkpoint or an ensemble.

    Args:
        ct: CT in HU: a (z, y, x) array, an :class:`~sepnet_core.data.inputs.InputVolume`, or a path
            (NIfTI file, DICOM folder or zip) read with :func:`~sepnet_core.data.inputs.read_input`.
        checkpoints: Checkpoint files and/or :class:`~sepnet_core.checkpoint.LoadedModel` members (already
            loaded members run on their own device; ``device`` then only sets the files' device).
        device: "auto", "cpu", "cuda", "cuda:N" or "mps" (:func:`sepnet_core.device.pick_device`).
        amp: bfloat16 autocast; None: the device's default (:func:`sepnet_core.device.resolve_amp`).
        mode: Sliding window, "gaussian" or "reference" (:mod:`sepnet_core.inference.sliding`).
        overlap: Window overlap in "gaussian" mode (default 0.5).
        batch_size: Windows per forward pass; default :func:`default_batch_size` of the device.
        probabilities: Also return the mean probability (C, z, y, x) float32.
        member_labels: Also return each member's labels (M, z, y, x) uint8.
        roi_subset: Organ keys (:data:`sepnet_core.organs.ORGANS`) to keep in ``labels``; default all.
        series_uid: SeriesInstanceUID when ``ct`` is a DICOM input with several series.
        stream: Streaming or whole-volume path (see ``predict_case``; default by device).
        progress: Called with the number of windows after each forward pass.

    Returns:
        A :class:`Segmentation`.

    Raises:
        FileNotFoundError, SepNetInputError, CheckpointError: unreadable input or checkpoint.
        ValueError: bad arguments (unknown organ, device, mode, ...).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    keep = organ_labels(roi_subset)
    geometry = None
    if isinstance(ct, (str, os.PathLike)):
        from sepnet_core.data.inputs import read_input

        ct = read_input(Path(ct), series_uid)
    if hasattr(ct, "image") and hasattr(ct, "geometry"):
        geometry, image = ct.geometry, ct.image
    else:
        image = np.asarray(ct)
    members = load_members(checkpoints, device)
    member_device = next(iter(members[0].model.parameters())).device
    use_amp = resolve_amp(amp, member_device)
    if batch_size is None:
        batch_size = default_batch_size(member_device)
    result = predict_case(members, image, overlap=overlap, mode=mode, batch_size=batch_size, amp=use_amp,
                          keep_mean_prob=probabilities, keep_member_labels=member_labels, stream=stream,
                          progress=progress)
    single = result.num_members == 1
    labels = result.labels
    if keep is not None:
        labels = np.where(np.isin(labels, keep), labels, 0).astype(np.uint8)
    settings = {
        "device": str(member_device), "amp": use_amp, "mode": mode, "batch_size": batch_size,
        "overlap": (overlap if overlap is not None else DEFAULT_OVERLAP) if MODES[mode] else None,
        "stream": stream if stream is not None else member_device.type == "cpu",
        "roi_subset": [o.key for o in ORGANS if o.label in keep] if keep is not None else None,
    }
    return Segmentation(
        labels=labels,
        uncertainty=result.predictive_entropy if single else result.vote_entropy,
        uncertainty_kind="predictive_entropy" if single else "vote_entropy",
        num_members=result.num_members,
        geometry=geometry,
        probabilities=result.mean_prob,
        predictive_entropy=result.predictive_entropy,
        member_labels=result.member_labels,
        settings=settings,
    )

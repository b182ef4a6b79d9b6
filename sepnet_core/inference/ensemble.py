"""Ensemble prediction of one CT volume: members, mean-probability fusion and uncertainty maps.

Each member (a :class:`~sepnet_core.training.checkpoint.LoadedModel`) sees the image the way it was
trained: centre crop/pad in-plane to its ``crop_yx`` (padding with air, -1000 HU), its own intensity
transform, then :func:`~sepnet_core.inference.sliding.predict_volume`. Its probabilities are put back
on the input grid; outside its crop it predicts background with probability 1. The fused label is the
argmax of the mean probability over members (the paper's fusion).

Memory: members are run one at a time; only a running float32 sum of probabilities and the members'
uint8 labels are kept, both restricted to the in-plane box covered by some member's crop (256 x 256
of a 512 x 512 scan with the reference crop). For 150 x 512 x 512 with 23 classes and 6 members that
is about 0.9 GB + 0.06 GB, plus one member's float32 probabilities (its sliding-window accumulator,
returned without a copy, 0.9 GB). Measured peak RSS of the whole process on that case: 2.8 GiB, of
which 0.8 GiB is Python, torch and the image (members that cost no activations, ``mode="reference"``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sepnet_core.data.crop import CropPad, center_crop_pad
from sepnet_core.inference.sliding import predict_volume
from sepnet_core.inference.uncertainty import predictive_entropy, vote_entropy
from sepnet_core.intensity import AIR_HU

__all__ = ["AIR_HU", "EnsembleResult", "predict_case", "member_patch_size"]

logger = logging.getLogger(__name__)

#: Slices per slab of the chunked reductions over the probability sum.
_CHUNK_Z = 16


@dataclass(frozen=True)
class EnsembleResult:
    """Output of :func:`predict_case`; every volume is on the input's (z, y, x) grid.

    Attributes:
        labels: Fused labels, uint8 (z, y, x), argmax of the mean probability.
        vote_entropy: Entropy of the members' votes (nats), float32 (z, y, x); all zero for one member.
        predictive_entropy: Entropy of the mean probability (nats), float32 (z, y, x).
        num_members: Number of members M.
        mean_prob: Mean probability, float32 (C, z, y, x), if requested (``keep_mean_prob``), else None.
        member_labels: Each member's own argmax, uint8 (M, z, y, x), if requested, else None.
    """

    labels: np.ndarray
    vote_entropy: np.ndarray
    predictive_entropy: np.ndarray
    num_members: int
    mean_prob: np.ndarray | None = None
    member_labels: np.ndarray | None = None


def member_patch_size(member: Any) -> tuple[int, int, int]:
    """The training patch ``(d, h, w)`` stored in a member's checkpoint (``meta["config"]["patch_size"]``).

    Raises:
        ValueError: the checkpoint's config holds no patch size.
    """
    patch = ((getattr(member, "meta", None) or {}).get("config") or {}).get("patch_size")
    if patch is None:
        raise ValueError(f"checkpoint {member.meta.get('path', '?')} stores no training patch_size; "
                         "pass patch_size explicitly")
    return tuple(int(p) for p in patch)  # type: ignore[return-value]


def _kept_region(info: CropPad | None, shape_yx: tuple[int, int]) -> tuple[tuple[slice, ...], ...]:
    """(slices in the input grid, slices in the cropped grid) of the in-plane region a crop keeps."""
    if info is None:
        full = (slice(0, shape_yx[0]), slice(0, shape_yx[1]))
        return full, full
    src, dst = [], []
    for n, m, o in zip(info.original_yx, info.size_yx, info.offset_yx, strict=True):
        start, stop = max(o, 0), min(o + m, n)
        src.append(slice(start, stop))
        dst.append(slice(start - o, stop - o))
    return tuple(src), tuple(dst)


def _crop_info(member: Any, shape_yx: tuple[int, int]) -> CropPad | None:
    """The :class:`CropPad` that ``member``'s crop applies to an in-plane grid (None: no crop)."""
    if member.crop_yx is None:
        return None
    return center_crop_pad(np.empty((0, *shape_yx), dtype=np.float32), member.crop_yx)[1]


def _check_image(image_hu: np.ndarray) -> np.ndarray:
    image = np.asarray(image_hu)
    if image.ndim != 3 or 0 in image.shape or image.dtype.kind not in "iuf":
        raise ValueError(f"image_hu must be a non-empty real (z, y, x) array in HU, got dtype {image.dtype} "
                         f"and shape {image.shape}")
    return image


def predict_case(
    models: Sequence[Any],
    image_hu: np.ndarray,
    *,
    patch_size: Sequence[int] | None = None,
    overlap: float | None = None,
    mode: str = "gaussian",
    batch_size: int = 1,
    amp: bool = False,
    keep_mean_prob: bool = False,
    keep_member_labels: bool = False,
) -> EnsembleResult:
    """Segment one CT volume with an ensemble and compute its uncertainty maps.

    Args:
        models: The members, :class:`~sepnet_core.training.checkpoint.LoadedModel` objects (each run on
            the device it was loaded to); at least one, all with the same number of classes.
        image_hu: CT volume (z, y, x) in HU, as :func:`sepnet_core.data.io.read_image` returns it.
        patch_size: Sliding window (d, h, w) voxels for every member; default: each member's training
            patch from its checkpoint. In ``"reference"`` mode only ``d`` (slab thickness) is used.
        overlap: Window overlap in ``"gaussian"`` mode (default 0.5), see
            :func:`~sepnet_core.inference.sliding.predict_volume`.
        mode: ``"gaussian"`` or ``"reference"`` (slabs of ``d`` slices, 16 in the paper, over the whole
            in-plane crop, stride 2 slices, summed softmax).
        batch_size: Windows per forward pass.
        amp: Autocast the networks (mixed precision).
        keep_mean_prob: Also return the mean probability (C, z, y, x) float32 on the full grid
            (C x 4 bytes per voxel: 3.6 GB for 150 x 512 x 512 x 23).
        keep_member_labels: Also return each member's labels (M, z, y, x) uint8.

    Returns:
        An :class:`EnsembleResult`.

    Raises:
        ValueError: no members, members with different class counts, a bad image or window argument.
    """
    if len(models) == 0:
        raise ValueError("models must hold at least one LoadedModel, got none")
    classes = {int(m.model_config.num_classes) for m in models}
    if len(classes) != 1:
        raise ValueError(f"ensemble members disagree on the number of classes: {sorted(classes)}")
    num_classes = classes.pop()
    if not 1 <= num_classes <= 256:
        raise ValueError(f"num_classes={num_classes} must be 1..256 (member labels are stored as uint8)")
    image = _check_image(image_hu)
    depth, shape_yx = image.shape[0], (int(image.shape[1]), int(image.shape[2]))

    # The in-plane box covered by at least one member; outside it every member says background.
    regions = [_kept_region(_crop_info(m, shape_yx), shape_yx)[0] for m in models]
    box = tuple(slice(min(r[a].start for r in regions), max(r[a].stop for r in regions)) for a in range(2))
    box_shape = (box[0].stop - box[0].start, box[1].stop - box[1].start)
    prob_sum = np.zeros((num_classes, depth, *box_shape), dtype=np.float32)
    votes = np.zeros((len(models), depth, *box_shape), dtype=np.uint8)

    for index, member in enumerate(models):
        if member.crop_yx is None:
            cropped, info = image, None
        else:
            cropped, info = center_crop_pad(image.astype(np.float32, copy=False), member.crop_yx, fill=AIR_HU)
        patch = tuple(patch_size) if patch_size is not None else member_patch_size(member)
        logger.info("member %d/%d: %s, window %s, mode %s", index + 1, len(models),
                    member.meta.get("path", member.model_config.name), patch, mode)
        probs = predict_volume(member.model, member.intensity(cropped), patch, overlap=overlap, mode=mode,
                               batch_size=batch_size, amp=amp, out_dtype=np.float32)
        del cropped
        if probs.shape[0] != num_classes:
            raise ValueError(f"member {index} predicted {probs.shape[0]} classes; "
                             f"its config says {num_classes}")
        src, dst = _kept_region(info, shape_yx)
        inner = tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(src, box, strict=True))
        prob_sum[(slice(None), slice(None), *inner)] += probs[(slice(None), slice(None), *dst)]
        outside = np.ones(box_shape, dtype=np.float32)
        outside[inner] = 0.0
        prob_sum[0] += outside  # background probability 1 where this member's crop does not reach
        for z0 in range(0, depth, _CHUNK_Z):
            zs = slice(z0, z0 + _CHUNK_Z)
            votes[(index, zs, *inner)] = probs[(slice(None), zs, *dst)].argmax(axis=0)
        del probs

    labels_box = np.empty((depth, *box_shape), dtype=np.uint8)
    pred_entropy_box = np.empty((depth, *box_shape), dtype=np.float32)
    for z0 in range(0, depth, _CHUNK_Z):
        zs = slice(z0, z0 + _CHUNK_Z)
        labels_box[zs] = prob_sum[:, zs].argmax(axis=0)
        pred_entropy_box[zs] = predictive_entropy(prob_sum[:, zs] / len(models))
    vote_entropy_box = vote_entropy(votes, num_classes)

    def full(array: np.ndarray, lead: tuple[int, ...] = ()) -> np.ndarray:
        """``array`` on the box, zero elsewhere on the input grid."""
        out = np.zeros((*lead, *image.shape), dtype=array.dtype)
        out[(*(slice(None),) * len(lead), slice(None), *box)] = array
        return out

    mean_prob = None
    if keep_mean_prob:
        prob_sum /= len(models)
        mean_prob = full(prob_sum, (num_classes,))
        outside_box = np.ones(shape_yx, dtype=bool)
        outside_box[box] = False
        mean_prob[0][:, outside_box] = 1.0
    return EnsembleResult(
        labels=full(labels_box),
        vote_entropy=full(vote_entropy_box),
        predictive_entropy=full(pred_entropy_box),
        num_members=len(models),
        mean_prob=mean_prob,
        member_labels=full(votes, (len(models),)) if keep_member_labels else None,
    )


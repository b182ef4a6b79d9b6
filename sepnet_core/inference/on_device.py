"""Whole-volume ensemble inference on the members' device: one upload, no per-window host copies.

The accelerator counterpart of the streaming path of :func:`sepnet_core.inference.ensemble.predict_case`
(which it is called from with ``stream=False``, the default when the members are on CUDA or MPS):

1. each distinct preprocessed input (:func:`sepnet_core.data.preprocess.preprocess`; members with the
   same crop and intensity transform share it) is uploaded once, as float32 (z, y, x);
2. each member's windows run in batches of ``batch_size`` and are stitched on the device
   (:func:`predict_volume_tensor`): a float32 (K, z, y', x') accumulator;
3. the member's probabilities are added to the ensemble's sum (K, z, box) and its argmax kept as a uint8
   vote (M, z, box), then freed;
4. mean probability, fused argmax (uint8), predictive and vote entropy (float32, nats) are computed on
   the device; only those maps (and, on request, the mean probability and the members' labels) are
   copied to the host.

Device memory for a 150 x 512 x 512 CT, 23 classes, in-plane crop 256 x 256: the ensemble sum and one
member's accumulator, 0.9 GB each in float32, the votes (M bytes per voxel of the box), the inputs and
one batch of window activations (about 1.3 GB per 16 x 256 x 256 window of the base-24 SepNet in float32,
half in bfloat16). On the CPU the numbers equal the streaming path's (same operations in the same order;
``tests/test_ensemble.py``), but the whole-volume buffers cost memory the streaming path avoids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from sepnet_core.device import resolve_amp
from sepnet_core.inference.ensemble import (
    EnsembleResult,
    _argmax_classes,
    _devices,
    check_members,
    ensemble_box,
    member_input_key,
    member_patch_size,
    member_place,
)
from sepnet_core.inference.sliding import (
    Predictor,
    _check_batch_size,
    _check_overlap,
    _check_patch,
    _padded,
    _plan,
    _window_probabilities,
)
from sepnet_core.inference.uncertainty import predictive_entropy_tensor, vote_entropy_tensor

__all__ = ["predict_case_on_device", "predict_volume_tensor"]


def predict_volume_tensor(
    model: Predictor,
    volume: torch.Tensor,
    patch_size: Sequence[int],
    overlap: float | None = None,
    mode: str = "gaussian",
    batch_size: int = 1,
    amp: bool = False,
    progress: Callable[[int], object] | None = None,
) -> torch.Tensor:
    """Softmax probabilities of a whole volume, accumulated on the volume's device (no host copies).

    The device counterpart of :func:`predict_slabs`: the same windows, weights and stitching, with the
    whole-volume float32 accumulator and weight sum on ``volume.device`` (for a 150 x 512 x 512 CT and
    23 classes 3.6 GB). On the CPU it gives the streaming path's numbers exactly.

    Args:
        model: Network (or callable) on ``volume.device``, ``(B, C, d, h, w)`` -> logits ``(B, K, d, h, w)``.
        volume: Intensity-transformed image tensor ``(D, H, W)`` or ``(C, D, H, W)``.
        patch_size, overlap, mode, batch_size, amp: As :func:`predict_volume`.
        progress: Called with the number of windows after each forward pass.

    Returns:
        float32 tensor ``(K, D, H, W)`` on ``volume.device``.

    Raises:
        ValueError: as :func:`predict_volume`.
    """
    overlap = _check_overlap(overlap, mode)
    patch = _check_patch(patch_size)
    batch_size = _check_batch_size(batch_size)
    x = volume.detach().float()
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"volume must be (D, H, W) or (C, D, H, W) and non-empty, got {tuple(x.shape)}")
    device = x.device
    size: tuple[int, int, int] = tuple(x.shape[1:])  # type: ignore[assignment]
    plan = _plan(size, patch, overlap, mode)
    x = _padded(x, size, plan)
    weight = plan.weight.to(device) if plan.weight is not None else None
    weight_sum = torch.zeros(plan.padded, dtype=torch.float32, device=device)
    acc: torch.Tensor | None = None
    for first in range(0, len(plan.boxes), batch_size):
        batch = plan.boxes[first:first + batch_size]
        inputs = torch.stack([x[(slice(None), *box)] for box in batch])
        probs = _window_probabilities(model, inputs, plan.window, device, amp, to_host=False)
        if progress is not None:
            progress(len(batch))
        if acc is None:
            acc = torch.zeros((probs.shape[1], *plan.padded), dtype=torch.float32, device=device)
        for prob, box in zip(probs, batch, strict=True):
            if weight is None:
                acc[(slice(None), *box)] += prob
                weight_sum[box] += 1.0
            else:
                acc[(slice(None), *box)].addcmul_(prob, weight)
                weight_sum[box] += weight
        del probs, inputs
    if acc is None:  # unreachable: every padded volume holds at least one window
        raise RuntimeError("no window was predicted")
    crop = tuple(slice(b, b + s) for b, s in zip(plan.before, size, strict=True))
    acc = acc[(slice(None), *crop)]
    return acc.div_(weight_sum[crop]) if acc.is_contiguous() else acc / weight_sum[crop]


def predict_case_on_device(
    models: Sequence[Any],
    image: np.ndarray,
    *,
    patch_size: Sequence[int] | None = None,
    overlap: float | None = None,
    mode: str = "gaussian",
    batch_size: int = 1,
    amp: bool | None = False,
    keep_mean_prob: bool = False,
    keep_member_labels: bool = False,
    progress: Callable[[int], object] | None = None,
) -> EnsembleResult:
    """:func:`~sepnet_core.inference.ensemble.predict_case` with the work on the members' device.

    Arguments and result as ``predict_case`` (``image`` is the checked (z, y, x) HU array).

    Raises:
        ValueError: members on different devices, or as ``predict_case``.
    """
    num_classes = check_members(models)
    devices = _devices(models)
    if len(devices) != 1:
        raise ValueError("the whole-volume path needs every member on one device, got "
                         f"{sorted(map(str, devices))}")
    device = devices.pop()
    use_amp = resolve_amp(amp, device)
    depth, shape_yx = image.shape[0], (int(image.shape[1]), int(image.shape[2]))
    box = ensemble_box(models, shape_yx)
    box_shape = (box[0].stop - box[0].start, box[1].stop - box[1].start)
    members = len(models)

    from sepnet_core.data.preprocess import preprocess

    prob_sum = torch.zeros((num_classes, depth, *box_shape), dtype=torch.float32, device=device)
    votes = torch.zeros((members, depth, *box_shape), dtype=torch.uint8, device=device)
    uploaded: dict[str, tuple[torch.Tensor, Any]] = {}
    for index, member in enumerate(models):
        key = member_input_key(member)
        if key not in uploaded:
            volume, info = preprocess(image, member.intensity, member.crop_yx)
            uploaded[key] = (torch.from_numpy(volume).to(device), info)
        volume_t, info = uploaded[key]
        patch = tuple(patch_size) if patch_size is not None else member_patch_size(member)
        probs = predict_volume_tensor(member.model, volume_t, patch, overlap=overlap, mode=mode,
                                      batch_size=batch_size, amp=use_amp, progress=progress)
        if probs.shape[0] != num_classes:
            raise ValueError(f"model predicted {probs.shape[0]} classes, num_classes={num_classes}")
        dst, inner, outside = member_place(member, info, shape_yx, box, device)
        probs = probs[(slice(None), slice(None), *dst)]
        prob_sum[(slice(None), slice(None), *inner)] += probs
        if outside is not None:  # background probability 1 where this member's crop does not reach
            prob_sum[0][:, outside] += 1.0
        votes[(index, slice(None), *inner)] = _argmax_classes(probs)
        del probs
    del uploaded

    mean = prob_sum.div_(members)
    labels = np.zeros(image.shape, dtype=np.uint8)
    vote_map = np.zeros(image.shape, dtype=np.float32)
    entropy_map = np.zeros(image.shape, dtype=np.float32)
    labels[(slice(None), *box)] = _argmax_classes(mean).cpu().numpy()
    entropy_map[(slice(None), *box)] = predictive_entropy_tensor(mean).cpu().numpy()
    vote_map[(slice(None), *box)] = vote_entropy_tensor(votes).cpu().numpy()
    mean_prob = None
    if keep_mean_prob:
        mean_prob = np.zeros((num_classes, *image.shape), dtype=np.float32)
        mean_prob[0] = 1.0  # background outside the box
        mean_prob[(slice(None), slice(None), *box)] = mean.cpu().numpy()
    member_labels = None
    if keep_member_labels:
        member_labels = np.zeros((members, *image.shape), dtype=np.uint8)
        member_labels[(slice(None), slice(None), *box)] = votes.cpu().numpy()
    return EnsembleResult(labels=labels, vote_entropy=vote_map, predictive_entropy=entropy_map,
                          num_members=members, mean_prob=mean_prob, member_labels=member_labels)

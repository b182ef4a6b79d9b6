"""Whole-volume sliding-window inference: windows, softmax, blending, stitching.

A volume is covered by windows (the last window of each axis is moved back to end at the border);
the network's logits of each window are turned into softmax probabilities and accumulated with a
per-voxel weight, then divided by the summed weights. Two blending modes:

* ``"gaussian"`` (default): windows of ``patch_size`` in all three axes, stride
  ``floor(patch * (1 - overlap))`` voxels (at least 1), each window weighted by a separable Gaussian
  importance map (sigma = 0.125 x patch size per axis, as MONAI and nnU-Net; peak 1, never zero).
* ``"reference"``: the reproduction's scheme (LWHYC/SepNet): slabs of ``patch_size[0]`` slices covering
  the full in-plane extent, stride 2 slices, softmax summed with equal weights. We divide by the number
  of slabs covering each voxel (the reference keeps the sum; the argmax is the same) so the output is
  a probability.

Volumes smaller than a window are padded symmetrically with their minimum (air, after any intensity
transform) and cropped back; in ``"reference"`` mode the in-plane extent is also padded to a multiple
of 8 (the networks' size divisor). Accumulation is in float32 on the CPU whatever the device; the
result is returned as ``out_dtype`` (float16 by default, to halve the memory of 23-class maps).
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["MODES", "DEFAULT_OVERLAP", "REFERENCE_STRIDE", "gaussian_importance_map", "predict_volume"]

logger = logging.getLogger(__name__)

#: Blending mode -> whether windows are weighted by the Gaussian importance map.
MODES: dict[str, bool] = {"gaussian": True, "reference": False}
#: Fraction of a window shared with its neighbour in "gaussian" mode when ``overlap`` is not given.
DEFAULT_OVERLAP = 0.5
#: Slab stride in slices of the "reference" mode (reference code).
REFERENCE_STRIDE = 2
#: In "reference" mode the in-plane extent is padded to a multiple of this (2 ** poolings).
SIZE_DIVISOR = 8
#: Gaussian sigma as a fraction of the window size per axis (MONAI, nnU-Net).
SIGMA_SCALE = 0.125

Predictor = Callable[[torch.Tensor], torch.Tensor]


def gaussian_importance_map(window: Sequence[int], sigma_scale: float = SIGMA_SCALE) -> torch.Tensor:
    """Separable Gaussian weights of one window, peak 1 at the centre.

    Args:
        window: Window size (d, h, w) in voxels.
        sigma_scale: Sigma per axis as a fraction of the window size.

    Returns:
        float32 tensor of shape ``window``; ``w[z, y, x] = g_d(z) g_h(y) g_w(x)`` with
        ``g_n(i) = exp(-(i - (n - 1) / 2)^2 / (2 (sigma_scale n)^2))`` normalised to peak 1. With the
        default sigma the smallest weight is about ``exp(-24)``, so no voxel gets weight zero.
    """
    weights = torch.ones(tuple(int(n) for n in window), dtype=torch.float64)
    for axis, n in enumerate(window):
        i = torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0
        g = torch.exp(-(i**2) / (2.0 * (sigma_scale * n) ** 2))
        shape = [1, 1, 1]
        shape[axis] = n
        weights = weights * (g / g.max()).reshape(shape)
    return weights.float()


def _check_patch(patch_size: Sequence[int]) -> tuple[int, int, int]:
    try:
        patch = tuple(int(p) for p in patch_size)
        ok = len(patch) == 3 and all(p >= 1 and p == q for p, q in zip(patch, patch_size, strict=True))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"patch_size={patch_size!r} must be 3 positive integers (d, h, w) in voxels")
    return patch  # type: ignore[return-value]


def _check_overlap(overlap: float | None, mode: str) -> float:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    if overlap is None:
        return DEFAULT_OVERLAP
    if not MODES[mode]:
        warnings.warn(f"overlap={overlap!r} has no effect in mode 'reference' (stride {REFERENCE_STRIDE} "
                      "slices)", stacklevel=3)
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap={overlap!r} must be a number with 0 <= overlap < 1")
    return float(overlap)


def _as_volume(volume: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(C, D, H, W) float32 CPU tensor from a (D, H, W) or (C, D, H, W) array or tensor."""
    if isinstance(volume, torch.Tensor):
        x = volume.detach().to("cpu", torch.float32)
    else:
        arr = np.asarray(volume)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"volume must be a numeric array, got dtype {arr.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"volume must be (D, H, W) or (C, D, H, W) and non-empty, got {tuple(x.shape)}")
    return x


def _starts(size: int, window: int, stride: int) -> list[int]:
    """Window start positions along one axis; the last window ends at the border (``size >= window``)."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def _model_device(model: Predictor) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            return tensor.device
    return torch.device("cpu")


def predict_volume(
    model: Predictor,
    volume: np.ndarray | torch.Tensor,
    patch_size: Sequence[int],
    overlap: float | None = None,
    mode: str = "gaussian",
    batch_size: int = 1,
    device: str | torch.device | None = None,
    amp: bool = False,
    out_dtype: type | np.dtype = np.float16,
) -> np.ndarray:
    """Softmax probabilities of a whole volume by sliding-window inference.

    Args:
        model: The network (in eval mode) or any callable mapping a float tensor
            ``(B, C, d, h, w)`` to LOGITS ``(B, K, d, h, w)``.
        volume: Intensity-transformed image, ``(D, H, W)`` or ``(C, D, H, W)`` with D = z slices.
        patch_size: Window size ``(d, h, w)`` in voxels; in ``"reference"`` mode only ``d`` (the slab
            thickness, 16 in the reference code) is used.
        overlap: ``"gaussian"`` mode: fraction of a window shared with its neighbour, ``0 <= overlap < 1``
            (default 0.5, i.e. stride = half a window). Has no effect (a warning) in ``"reference"`` mode.
        mode: ``"gaussian"`` or ``"reference"`` (see the module docstring).
        batch_size: Windows per forward pass (the stitching does not depend on it; a network may differ by
            float rounding between batched and single windows).
        device: Device the windows are run on; default: the model's device (CPU for a plain callable).
        amp: Run the model under ``torch.autocast`` (float16 on CUDA, bfloat16 on CPU).
        out_dtype: dtype of the result (``np.float16`` default, or ``np.float32``).

    Returns:
        ``(K, D, H, W)`` probabilities (sum 1 over K per voxel up to rounding), dtype ``out_dtype``.

    Raises:
        ValueError: bad ``patch_size``, ``overlap``, ``mode``, ``batch_size`` or volume shape, or a model
            output that is not ``(B, K, *window)``.
        TypeError: a non-numeric volume.

    Example:
        >>> pointwise = lambda x: torch.cat([x, -x], dim=1)  # softmax p0 = sigmoid(2 x)
        >>> probs = predict_volume(pointwise, np.zeros((5, 6, 7)), (4, 4, 4), out_dtype=np.float32)
        >>> probs.shape, float(probs[0, 0, 0, 0])
        ((2, 5, 6, 7), 0.5)
    """
    overlap = _check_overlap(overlap, mode)
    patch = _check_patch(patch_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1")
    x = _as_volume(volume)
    device = torch.device(device) if device is not None else _model_device(model)
    size = tuple(x.shape[1:])

    weight: torch.Tensor | None
    if MODES[mode]:
        window = patch
        stride = tuple(max(1, int(p * (1.0 - overlap) + 1e-9)) for p in patch)
        weight = gaussian_importance_map(window)
    else:
        window = (patch[0], *(math.ceil(s / SIZE_DIVISOR) * SIZE_DIVISOR for s in size[1:]))
        stride = (REFERENCE_STRIDE, 1, 1)
        weight = None  # equal weights: plain sum and count

    # Pad symmetrically to at least one window per axis, with the volume's minimum.
    padded = tuple(max(s, w) for s, w in zip(size, window, strict=True))
    before = tuple((p - s) // 2 for p, s in zip(padded, size, strict=True))
    if padded != size:
        pad: list[int] = []
        for s, p, b in reversed(list(zip(size, padded, before, strict=True))):
            pad += [b, p - s - b]
        x = F.pad(x, pad, mode="constant", value=float(x.min()))
    starts = itertools.product(*(_starts(p, w, s) for p, w, s in zip(padded, window, stride, strict=True)))
    boxes = [tuple(slice(s, s + w) for s, w in zip(start, window, strict=True)) for start in starts]
    logger.debug("predict_volume: %d windows of %s over %s (mode %s)", len(boxes), window, padded, mode)

    acc: torch.Tensor | None = None
    weight_sum = torch.zeros(padded, dtype=torch.float32)
    with torch.no_grad(), torch.autocast(device_type=device.type, enabled=amp):
        for first in range(0, len(boxes), batch_size):
            batch = boxes[first:first + batch_size]
            inputs = torch.stack([x[(slice(None), *box)] for box in batch]).to(device)
            logits = model(inputs)
            if logits.ndim != 5 or logits.shape[0] != len(batch) or tuple(logits.shape[2:]) != window:
                raise ValueError(f"model output shape {tuple(logits.shape)} must be (B, K, *window) = "
                                 f"({len(batch)}, K, {', '.join(map(str, window))})")
            probs = torch.softmax(logits.float(), dim=1).cpu()
            if acc is None:
                acc = torch.zeros((probs.shape[1], *padded), dtype=torch.float32)
            for prob, box in zip(probs, batch, strict=True):
                acc[(slice(None), *box)] += prob if weight is None else prob * weight
                weight_sum[box] += 1.0 if weight is None else weight
    if acc is None:  # unreachable: every padded volume holds at least one window
        raise RuntimeError("no window was predicted")
    acc /= weight_sum
    crop = tuple(slice(b, b + s) for b, s in zip(before, size, strict=True))
    return acc[(slice(None), *crop)].numpy().astype(out_dtype, copy=False)

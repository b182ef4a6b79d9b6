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

Streaming: windows run in z-major order, so once every window starting at or before slice ``z`` is done,
the slices before the next window's start are final. :func:`predict_slabs` yields those slabs as they
are finished and keeps only a rolling accumulator one window deep (23 x 16 x 256 x 256 float32 = 96 MB
for the reference window), never a whole-volume float32 map; :func:`predict_volume` writes the slabs
into its ``out_dtype`` result and the ensemble (:func:`~sepnet_core.inference.ensemble.predict_case`)
fuses its members slab by slab (on an accelerator the whole volume is stitched on the device instead:
:func:`sepnet_core.inference.on_device.predict_volume_tensor`, same windows and weights). The network
runs under ``torch.inference_mode`` (and ``torch.autocast`` with ``amp``); the stitching does not.
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sepnet_core.device import autocast

__all__ = ["MODES", "DEFAULT_OVERLAP", "REFERENCE_STRIDE", "count_windows", "gaussian_importance_map",
           "predict_slabs", "predict_volume", "shift_out_"]

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


def shift_out_(buffer: torch.Tensor, n: int, dim: int) -> None:
    """Drop the first ``n`` entries of ``buffer`` along ``dim`` in place: entries ``[n:]`` move to the front
    and the freed tail is zeroed (the rolling accumulators of :func:`predict_slabs` and the ensemble).

    Copies run front to back in steps of ``n``, so source and destination never overlap and no
    buffer-sized temporary is made.

    Args:
        buffer: tensor changed in place.
        n: entries to drop, ``1 <= n <= buffer.shape[dim]``.
        dim: the rolling axis (z).
    """
    size = buffer.shape[dim]
    if not 1 <= n <= size:
        raise ValueError(f"n={n} must be in 1..{size}")
    for start in range(0, size - n, n):
        stop = min(start + n, size - n)
        buffer.narrow(dim, start, stop - start).copy_(buffer.narrow(dim, start + n, stop - start))
    buffer.narrow(dim, size - n, n).zero_()


@dataclass(frozen=True)
class _Plan:
    """Windows of one volume: size (d, h, w) of a window, padded volume size, padding before each axis,
    window boxes in z-major order and the per-voxel weight (None: equal weights)."""

    window: tuple[int, int, int]
    padded: tuple[int, int, int]
    before: tuple[int, int, int]
    boxes: list[tuple[slice, slice, slice]]
    weight: torch.Tensor | None


def _plan(size: tuple[int, int, int], patch: tuple[int, int, int], overlap: float, mode: str) -> _Plan:
    weight: torch.Tensor | None
    if MODES[mode]:
        window = patch
        stride = tuple(max(1, int(p * (1.0 - overlap) + 1e-9)) for p in patch)
        weight = gaussian_importance_map(window)
    else:
        window = (patch[0], *(math.ceil(s / SIZE_DIVISOR) * SIZE_DIVISOR for s in size[1:]))
        stride = (REFERENCE_STRIDE, 1, 1)
        weight = None  # equal weights: plain sum and count
    padded = tuple(max(s, w) for s, w in zip(size, window, strict=True))
    before = tuple((p - s) // 2 for p, s in zip(padded, size, strict=True))
    starts = itertools.product(*(_starts(p, w, s) for p, w, s in zip(padded, window, stride, strict=True)))
    boxes = [tuple(slice(s, s + w) for s, w in zip(start, window, strict=True)) for start in starts]
    return _Plan(window, padded, before, boxes, weight)  # type: ignore[arg-type]


def _check_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1")
    return batch_size


def _window_probabilities(model: Predictor, inputs: torch.Tensor, window: tuple[int, ...],
                          device: torch.device, amp: bool, to_host: bool = True) -> torch.Tensor:
    """Softmax of the model's logits for a batch of windows, float32 (on the CPU, or on ``device`` when
    ``to_host`` is false)."""
    with torch.inference_mode(), autocast(device, amp):
        logits = model(inputs.to(device))
        if logits.ndim != 5 or logits.shape[0] != inputs.shape[0] or tuple(logits.shape[2:]) != window:
            raise ValueError(f"model output shape {tuple(logits.shape)} must be (B, K, *window) = "
                             f"({inputs.shape[0]}, K, {', '.join(map(str, window))})")
        if logits.device.type != "cpu":
            probs = torch.softmax(logits.float(), dim=1)
            return probs.cpu() if to_host else probs
        # On the CPU: softmax in place on a float32 copy (no second window-sized buffer; 2x faster than
        # torch.softmax over dim 1 of a (B, K, d, h, w) tensor, which does not vectorise that reduction).
        probs = logits.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
        probs.sub_(probs.amax(dim=1, keepdim=True)).exp_()
        return probs.div_(probs.sum(dim=1, keepdim=True))


def count_windows(shape: Sequence[int], patch_size: Sequence[int], overlap: float | None = None,
                  mode: str = "gaussian") -> int:
    """Number of windows (network forwards at batch size 1) that cover a (D, H, W) volume."""
    size = tuple(int(s) for s in shape)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"shape must be (D, H, W) positive sizes, got {tuple(shape)!r}")
    return len(_plan(size, _check_patch(patch_size), _check_overlap(overlap, mode), mode).boxes)


def _padded(x: torch.Tensor, size: tuple[int, int, int], plan: _Plan) -> torch.Tensor:
    """``x`` (C, D, H, W) padded symmetrically to ``plan.padded`` with its minimum (air)."""
    if plan.padded == size:
        return x
    pad: list[int] = []
    for s, p, b in reversed(list(zip(size, plan.padded, plan.before, strict=True))):
        pad += [b, p - s - b]
    return F.pad(x, pad, mode="constant", value=float(x.min()))


def predict_slabs(
    model: Predictor,
    volume: np.ndarray | torch.Tensor,
    patch_size: Sequence[int],
    overlap: float | None = None,
    mode: str = "gaussian",
    batch_size: int = 1,
    device: str | torch.device | None = None,
    amp: bool = False,
    num_classes: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Softmax probabilities of a volume by sliding-window inference, slab by slab along z.

    Arguments and stitching are those of :func:`predict_volume` (which collects these slabs); they are
    checked here, before any window runs. Slabs come in order, adjoin each other and together cover the
    volume's D slices exactly once.

    Args:
        num_classes: The model's number of classes K, if known: the rolling accumulator is then allocated
            now, before any window's activations (less heap fragmentation when several streams are
            interleaved); a model predicting another K raises ValueError. Default: allocated at the
            first window.
        progress: Called with the number of windows after each forward pass (e.g. ``tqdm.update``).

    Returns:
        An iterator of ``(z0, probs)``: the first slice of the slab in the input volume and its
        probabilities, a float32 CPU tensor ``(K, n, H, W)`` (n >= 1 slices) owned by the caller.

    Raises:
        ValueError, TypeError: as :func:`predict_volume`.
    """
    overlap = _check_overlap(overlap, mode)
    patch = _check_patch(patch_size)
    batch_size = _check_batch_size(batch_size)
    x = _as_volume(volume)
    device = torch.device(device) if device is not None else _model_device(model)
    size: tuple[int, int, int] = tuple(x.shape[1:])  # type: ignore[assignment]
    plan = _plan(size, patch, overlap, mode)
    x = _padded(x, size, plan)  # at least one window per axis
    logger.debug("predict_slabs: %d windows of %s over %s (mode %s)", len(plan.boxes), plan.window,
                 plan.padded, mode)

    acc = None  # (K, depth, H', W') float32: allocated now if K is known, before any window runs
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes={num_classes!r} must be an integer >= 1 or None")
        acc = torch.zeros((num_classes, plan.window[0], *plan.padded[1:]), dtype=torch.float32)
    return _stream(model, x, size, plan, batch_size, device, amp, acc, progress)


def _stream(model: Predictor, x: torch.Tensor, size: tuple[int, int, int], plan: _Plan, batch_size: int,
            device: torch.device, amp: bool, acc: torch.Tensor | None,
            progress: Callable[[int], object] | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """The generator behind :func:`predict_slabs` (``x`` padded to ``plan.padded``).

    ``acc`` holds slices [top, top + depth) of the padded volume; no grad mode is entered here (it would
    stay set in the caller's code while the generator waits): the network runs under inference_mode and
    the buffers never require grad.
    """
    depth = plan.window[0]
    z_lo, z_hi = plan.before[0], plan.before[0] + size[0]  # the volume's slices in padded coordinates
    crop_yx = tuple(slice(b, b + s) for b, s in zip(plan.before[1:], size[1:], strict=True))
    weight_sum = torch.zeros((depth, *plan.padded[1:]), dtype=torch.float32)
    top = 0

    def finished(acc: torch.Tensor, stop: int) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield padded slices [top, stop) (final) cropped to the volume, and roll the buffers."""
        nonlocal top
        n = stop - top
        a, b = max(top, z_lo), min(stop, z_hi)
        if a < b:
            rows = slice(a - top, b - top)
            slab = acc[(slice(None), rows, *crop_yx)] / weight_sum[(rows, *crop_yx)]
            yield a - z_lo, slab
        shift_out_(acc, n, dim=1)
        shift_out_(weight_sum, n, dim=0)
        top = stop

    for first in range(0, len(plan.boxes), batch_size):
        batch = plan.boxes[first:first + batch_size]
        inputs = torch.stack([x[(slice(None), *box)] for box in batch])
        probs = _window_probabilities(model, inputs, plan.window, device, amp)
        if progress is not None:
            progress(len(batch))
        if acc is None:
            acc = torch.zeros((probs.shape[1], depth, *plan.padded[1:]), dtype=torch.float32)
        elif probs.shape[1] != acc.shape[0]:
            raise ValueError(f"model predicted {probs.shape[1]} classes, num_classes={acc.shape[0]}")
        for prob, box in zip(probs, batch, strict=True):
            if box[0].start > top:
                yield from finished(acc, box[0].start)
            local = (slice(box[0].start - top, box[0].stop - top), *box[1:])
            if plan.weight is None:
                acc[(slice(None), *local)] += prob
                weight_sum[local] += 1.0
            else:
                acc[(slice(None), *local)].addcmul_(prob, plan.weight)
                weight_sum[local] += plan.weight
        del probs, inputs
    if acc is None:  # unreachable: every padded volume holds at least one window
        raise RuntimeError("no window was predicted")
    yield from finished(acc, top + depth)


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
        amp: Run the model under ``torch.autocast`` in bfloat16 (as training does with ``amp``).
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
    out: np.ndarray | None = None
    slabs = predict_slabs(model, volume, patch_size, overlap=overlap, mode=mode, batch_size=batch_size,
                          device=device, amp=amp)
    for z0, slab in slabs:
        if out is None:  # the volume passed the checks of predict_slabs: (D, H, W) or (C, D, H, W)
            out = np.empty((slab.shape[0], int(volume.shape[-3]), *slab.shape[2:]), dtype=out_dtype)
        out[:, z0:z0 + slab.shape[1]] = slab.numpy()
    if out is None:  # unreachable: a non-empty volume yields at least one slab
        raise RuntimeError("no slab was predicted")
    return out



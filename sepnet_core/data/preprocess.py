"""The one preprocessing of a CT for the network, shared by training and inference.

Following the reference code there is no resampling: every slice is centre-cropped (or padded with air,
-1000 HU) in-plane to the model's ``crop_yx`` (:func:`~sepnet_core.data.crop.center_crop_pad`), then the
intensity transform (SLF or a window, :mod:`sepnet_core.intensity`) maps HU to network intensities.
Training (:func:`sepnet_core.training.data.prepare_case`) and inference
(:func:`sepnet_core.inference.predict_case`) both call :func:`preprocess`, so they cannot drift apart.

Example:
    >>> import numpy as np
    >>> from sepnet_core.intensity import get_intensity
    >>> image, info = preprocess(np.zeros((2, 5, 4), np.int16), get_intensity("slf1"), (4, 6))
    >>> image.shape, image.dtype, info.offset_yx
    ((2, 4, 6), dtype('float32'), (1, -1))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sepnet_core.data.crop import CropPad, center_crop_pad
from sepnet_core.intensity import AIR_HU, Intensity

__all__ = ["preprocess", "crop_label"]


def preprocess(image_hu: np.ndarray, intensity: Intensity, crop_yx: Sequence[int] | None
               ) -> tuple[np.ndarray, CropPad | None]:
    """Crop/pad a CT in-plane with air, then apply the intensity transform.

    Args:
        image_hu: CT (z, y, x) in HU, any real dtype.
        intensity: HU -> network intensity transform of the model.
        crop_yx: In-plane size (y, x) in voxels, or None to keep the slices whole.

    Returns:
        ``(image, info)``: C-contiguous float32 (z, y', x') network intensities and the
        :class:`~sepnet_core.data.crop.CropPad` that maps the cropped grid back (None without a crop).
    """
    image = np.asarray(image_hu).astype(np.float32, copy=False)
    info = None
    if crop_yx is not None:
        image, info = center_crop_pad(image, tuple(crop_yx), fill=AIR_HU)
    return np.ascontiguousarray(intensity(image), dtype=np.float32), info


def crop_label(label: np.ndarray, crop_yx: Sequence[int] | None) -> np.ndarray:
    """A label map (z, y, x) with the crop of :func:`preprocess` (padding is background 0), as uint8."""
    if crop_yx is not None:
        label, _ = center_crop_pad(label, tuple(crop_yx), fill=0)
    return np.ascontiguousarray(label, dtype=np.uint8)

"""In-plane centre crop/pad of (..., y, x) arrays and its exact inverse.

The reference code crops every slice to 256 x 256 around the centre and keeps all slices (no
resampling). :func:`center_crop_pad` does that for any target size, cropping an axis that is too
large and padding one that is too small (independently per axis), and returns a :class:`CropPad`
record; :func:`undo_crop_pad` puts an array of the cropped size back on the original in-plane grid.

Centring rule (ours, one rule for crop and pad): input index ``n // 2`` lands on output index
``m // 2`` (``n`` input size, ``m`` output size), i.e. output index ``i`` shows input index
``i + offset`` with ``offset = n // 2 - m // 2``. For 512 -> 256 this keeps rows 128..383, as the
reference code does.

Example:
    >>> import numpy as np
    >>> volume = np.arange(2 * 5 * 4).reshape(2, 5, 4)
    >>> out, info = center_crop_pad(volume, (3, 6))
    >>> out.shape, info.offset_yx
    ((2, 3, 6), (1, -1))
    >>> restored = undo_crop_pad(out, info, fill=-1)  # rows 0 and 4 were cropped away
    >>> bool((restored[:, 1:4] == volume[:, 1:4]).all()), int(restored[:, 0].max())
    (True, -1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CropPad", "center_crop_pad", "undo_crop_pad"]


def _pair(name: str, value: Any) -> tuple[int, int]:
    """Validate a (y, x) pair of positive ints."""
    try:
        pair = tuple(int(v) for v in value)
        exact = all(int(v) == v for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be two positive integers (y, x), got {value!r}") from exc
    if len(pair) != 2 or not exact or min(pair) < 1:
        raise ValueError(f"{name} must be two positive integers (y, x), got {value!r}")
    return pair  # type: ignore[return-value]


@dataclass(frozen=True)
class CropPad:
    """What :func:`center_crop_pad` did, enough to undo it.

    Attributes:
        original_yx: In-plane size (y, x) before cropping/padding, voxels.
        size_yx: In-plane size (y, x) after, voxels.
        offset_yx: Signed offset per axis: output index ``i`` holds input index ``i + offset``
            (positive: cropped at the start; negative: padded at the start).
    """

    original_yx: tuple[int, int]
    size_yx: tuple[int, int]
    offset_yx: tuple[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "original_yx", _pair("original_yx", self.original_yx))
        object.__setattr__(self, "size_yx", _pair("size_yx", self.size_yx))
        offsets = tuple(int(v) for v in self.offset_yx)
        if len(offsets) != 2:
            raise ValueError(f"offset_yx must be two integers (y, x), got {self.offset_yx!r}")
        for axis, (n, m, o) in enumerate(zip(self.original_yx, self.size_yx, offsets, strict=True)):
            if o + m <= 0 or o >= n:
                raise ValueError(f"offset_yx[{axis}]={o} leaves no overlap between sizes {n} and {m}")
        object.__setattr__(self, "offset_yx", offsets)

    def _slices(self) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """(input slices, output slices) of the region kept in both grids."""
        src, dst = [], []
        for n, m, o in zip(self.original_yx, self.size_yx, self.offset_yx, strict=True):
            start, stop = max(o, 0), min(o + m, n)
            src.append(slice(start, stop))
            dst.append(slice(start - o, stop - o))
        return (src[0], src[1]), (dst[0], dst[1])

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-able dict."""
        return {"original_yx": list(self.original_yx), "size_yx": list(self.size_yx),
                "offset_yx": list(self.offset_yx)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CropPad:
        """Inverse of :meth:`to_dict`."""
        return cls(original_yx=data["original_yx"], size_yx=data["size_yx"], offset_yx=data["offset_yx"])


def _filled(shape: tuple[int, ...], fill: float, dtype: np.dtype) -> np.ndarray:
    """Array of ``shape`` filled with ``fill``, which must be representable in ``dtype``."""
    value = np.asarray(fill)
    if value.ndim != 0 or value.dtype.kind not in "biuf":
        raise ValueError(f"fill must be a real number, got {fill!r}")
    with np.errstate(invalid="ignore", over="ignore"):
        cast = value.astype(dtype)
    if not (cast == value or (np.isnan(value) and np.isnan(cast))):
        raise ValueError(f"fill={fill!r} cannot be stored exactly in an array of dtype {dtype}")
    return np.full(shape, cast, dtype=dtype)


def _check_array(name: str, array: Any) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim < 2:
        raise ValueError(f"{name} must have shape (..., y, x) with at least 2 axes, got {array.shape}")
    return array


def center_crop_pad(
    volume: np.ndarray, size_yx: Sequence[int], fill: float = 0
) -> tuple[np.ndarray, CropPad]:
    """Centre-crop or pad the last two axes (y, x) of ``volume`` to ``size_yx``.

    Args:
        volume: Array of shape (..., Y, X), e.g. a (z, y, x) CT volume or (C, z, y, x) map.
        size_yx: Target in-plane size (y, x), voxels; each axis is cropped or padded independently.
        fill: Value of padded voxels (e.g. -1000 HU for air, 0 for background labels); must be
            representable in ``volume.dtype``.

    Returns:
        ``(out, info)``: a new array of shape (..., size_y, size_x) with ``volume``'s dtype, and the
        :class:`CropPad` record for :func:`undo_crop_pad`.

    Raises:
        ValueError: ``volume`` has fewer than 2 axes, ``size_yx`` is not two positive integers, or
            ``fill`` does not fit the dtype.
    """
    volume = _check_array("volume", volume)
    size = _pair("size_yx", size_yx)
    original = (int(volume.shape[-2]), int(volume.shape[-1]))
    offsets = tuple(n // 2 - m // 2 for n, m in zip(original, size, strict=True))
    info = CropPad(original_yx=original, size_yx=size, offset_yx=offsets)
    out = _filled(volume.shape[:-2] + size, fill, volume.dtype)
    src, dst = info._slices()
    out[(..., *dst)] = volume[(..., *src)]
    return out, info


def undo_crop_pad(array: np.ndarray, info: CropPad, fill: float = 0) -> np.ndarray:
    """Put an array of the cropped size back on the original in-plane grid.

    The exact inverse of :func:`center_crop_pad` on the region both grids share; voxels that were
    cropped away are set to ``fill`` (padding added by the crop is dropped). Leading axes may differ
    from those of the cropped volume, so a (C, z, y, x) probability map can be restored with the
    record of a (z, y, x) crop.

    Args:
        array: Array of shape (..., size_y, size_x) matching ``info.size_yx``.
        info: The record returned by :func:`center_crop_pad`.
        fill: Value for the cropped-away region; must be representable in ``array.dtype``.

    Returns:
        A new array of shape (..., original_y, original_x) and ``array``'s dtype.

    Raises:
        ValueError: The last two axes of ``array`` differ from ``info.size_yx``, or ``fill`` does not
            fit the dtype.
    """
    array = _check_array("array", array)
    if not isinstance(info, CropPad):
        raise TypeError(f"info must be a CropPad, got {type(info).__name__}")
    if tuple(array.shape[-2:]) != info.size_yx:
        raise ValueError(f"array in-plane shape {tuple(array.shape[-2:])} != info.size_yx {info.size_yx}")
    out = _filled(array.shape[:-2] + info.original_yx, fill, array.dtype)
    src, dst = info._slices()
    out[(..., *src)] = array[(..., *dst)]
    return out

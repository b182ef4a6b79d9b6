"""Voxel grids: where each voxel of a (z, y, x) array lies in the patient, and how to map it back.

Conventions (ITK/DICOM patient coordinates, "LPS"): physical x grows towards the patient's left,
y towards posterior, z towards superior, in mm. ``origin`` and ``direction`` are given as ITK gives
them, in (x, y, z) order; ``shape`` and ``spacing_mm`` follow the array in (z, y, x) order.

Canonical orientation. :func:`sepnet_core.data.io.read_image` returns every volume re-oriented by
axis permutation and flips (no resampling) to the orientation SimpleITK's ``DICOMOrient`` calls
``"LPS"`` (the one older ITK enums call ``RAI``): array axis x runs right-to-left, y anterior-to-
posterior, z inferior-to-superior, and the direction matrix is the identity for non-oblique scans.
StructSeg and phantom files are axial with an identity direction already, so for them nothing
moves. A :class:`Geometry` describes that canonical array grid and remembers how the file stored it
(``file_axes``, ``file_flips``), so that :func:`sepnet_core.data.io.write_image` writes outputs
back on exactly the input's own voxel grid and order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["Geometry", "IDENTITY_DIRECTION", "SPACING_TOL_MM", "DIRECTION_TOL"]

IDENTITY_DIRECTION: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
SPACING_TOL_MM = 1e-4  # absolute and relative tolerance for spacing and origin comparisons (mm)
DIRECTION_TOL = 1e-5  # absolute tolerance for direction-cosine comparisons


def _tuple(name: str, value: Any, length: int, kind: type) -> tuple:
    """Convert a sequence to a tuple of ``kind`` of the given length, or raise ValueError."""
    try:
        items = tuple(kind(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of {length} numbers, got {value!r}") from exc
    if len(items) != length:
        raise ValueError(f"{name} must have {length} entries, got {len(items)}: {value!r}")
    return items


@dataclass(frozen=True)
class Geometry:
    """The voxel grid of a (z, y, x) array and the file grid it came from.

    Attributes:
        shape: Array shape (z, y, x), voxels.
        spacing_mm: Voxel spacing (z, y, x) in mm, all > 0.
        origin: Physical position (x, y, z) in LPS mm of voxel [0, 0, 0] (ITK order).
        direction: 3 x 3 direction cosines, row-major as ITK gives them; column j is the physical
            direction of ITK index axis j (j = 0 is array axis x, j = 2 is array axis z).
        file_axes: How the file stores the array: ``array == np.transpose(file_array, file_axes)``
            followed by the flips below. ``(0, 1, 2)`` when the file is already canonical.
        file_flips: Per array axis (z, y, x), whether that axis is reversed relative to the file.

    Equality (``==``) is exact; use :meth:`isclose` or :meth:`mismatch` to compare grids read from
    files (tolerances ``SPACING_TOL_MM`` for spacing and origin, ``DIRECTION_TOL`` for direction).

    Example:
        >>> g = Geometry(shape=(3, 4, 5), spacing_mm=(3.0, 1.0, 1.0))
        >>> g.file_geometry == g
        True
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = IDENTITY_DIRECTION
    file_axes: tuple[int, int, int] = (0, 1, 2)
    file_flips: tuple[bool, bool, bool] = field(default=(False, False, False))

    def __post_init__(self) -> None:
        shape = _tuple("shape", self.shape, 3, int)
        if min(shape) < 1:
            raise ValueError(f"shape must be 3 positive voxel counts (z, y, x), got {shape}")
        spacing = _tuple("spacing_mm", self.spacing_mm, 3, float)
        if not all(math.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"spacing_mm must be 3 finite values > 0 mm (z, y, x), got {spacing}")
        origin = _tuple("origin", self.origin, 3, float)
        direction = _tuple("direction", self.direction, 9, float)
        if not all(math.isfinite(v) for v in origin + direction):
            raise ValueError(f"origin and direction must be finite, got {origin} and {direction}")
        axes = _tuple("file_axes", self.file_axes, 3, int)
        if sorted(axes) != [0, 1, 2]:
            raise ValueError(f"file_axes must be a permutation of (0, 1, 2), got {axes}")
        flips = _tuple("file_flips", self.file_flips, 3, bool)
        for name, value in (("shape", shape), ("spacing_mm", spacing), ("origin", origin),
                            ("direction", direction), ("file_axes", axes), ("file_flips", flips)):
            object.__setattr__(self, name, value)

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def from_file_grid(
        cls,
        shape: Sequence[int],
        spacing_mm: Sequence[float],
        origin: Sequence[float],
        direction: Sequence[float],
    ) -> Geometry:
        """Canonical geometry of a file grid given in the file's own (z, y, x) voxel order.

        Each index axis is assigned to the physical axis its direction cosine is closest to (ties and
        oblique scans resolved greedily, strongest axis first) and flipped if it points the negative
        way; the result matches ``SimpleITK.DICOMOrient(image, "LPS")``.

        Args:
            shape: File array shape (z, y, x) as ``SimpleITK.GetArrayFromImage`` returns it.
            spacing_mm: File spacing (z, y, x) in mm (the reverse of ITK's ``GetSpacing()``).
            origin: ITK origin (x, y, z) in mm.
            direction: ITK direction, 9 floats row-major.

        Returns:
            The geometry of the canonical array, with ``file_axes``/``file_flips`` to undo it.
        """
        file = cls(shape=shape, spacing_mm=spacing_mm, origin=origin, direction=direction)
        matrix = np.asarray(file.direction, dtype=np.float64).reshape(3, 3)
        physical_of_index = [-1, -1, -1]  # ITK index axis -> physical axis
        for index_axis in np.argsort(-np.abs(matrix).max(axis=0), kind="stable"):
            free = [p for p in range(3) if p not in physical_of_index]
            physical_of_index[index_axis] = max(free, key=lambda p: abs(matrix[p, index_axis]))
        index_of_physical = [physical_of_index.index(p) for p in range(3)]
        # numpy axis n <-> ITK index axis 2 - n.
        axes = tuple(2 - index_of_physical[2 - n] for n in range(3))
        flips = tuple(bool(matrix[2 - n, 2 - axes[n]] < 0) for n in range(3))
        shape_c = tuple(file.shape[a] for a in axes)
        sign = np.where(flips, -1.0, 1.0)[::-1]  # per canonical ITK axis (x, y, z)
        columns = matrix[:, [2 - a for a in axes][::-1]] * sign
        return cls(
            shape=shape_c,
            spacing_mm=tuple(file.spacing_mm[a] for a in axes),
            origin=file.physical_point(_file_index((0, 0, 0), axes, flips, shape_c)),
            direction=tuple(columns.reshape(-1).tolist()),
            file_axes=axes,
            file_flips=flips,
        )

    # ----------------------------------------------------------------------------- file mapping
    @property
    def is_canonical_file(self) -> bool:
        """True when the file stores the array as is (no permutation, no flips)."""
        return self.file_axes == (0, 1, 2) and not any(self.file_flips)

    @property
    def file_geometry(self) -> Geometry:
        """The grid exactly as the file stores it (file voxel order, identity ``file_axes``)."""
        if self.is_canonical_file:
            return self
        inverse = tuple(int(i) for i in np.argsort(self.file_axes))
        matrix = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        sign = np.where(self.file_flips, -1.0, 1.0)[::-1]
        file_columns = np.empty((3, 3))
        for n in range(3):  # canonical numpy axis n came from file numpy axis file_axes[n]
            file_columns[:, 2 - self.file_axes[n]] = matrix[:, 2 - n] * sign[2 - n]
        corner = [self.shape[n] - 1 if self.file_flips[n] else 0 for n in range(3)]
        return Geometry(
            shape=tuple(self.shape[i] for i in inverse),
            spacing_mm=tuple(self.spacing_mm[i] for i in inverse),
            origin=self.physical_point(corner),
            direction=tuple(file_columns.reshape(-1).tolist()),
        )

    def to_canonical(self, file_array: np.ndarray) -> np.ndarray:
        """Re-order an array given in file voxel order, shape (..., z, y, x), to this grid's order.

        Returns a view where possible (no copy). Leading axes (channels) are left alone.
        """
        self._check_ndim(file_array)
        lead = file_array.ndim - 3
        out = np.transpose(file_array, tuple(range(lead)) + tuple(lead + a for a in self.file_axes))
        flip_axes = tuple(lead + n for n in range(3) if self.file_flips[n])
        return np.flip(out, flip_axes) if flip_axes else out

    def to_file(self, array: np.ndarray) -> np.ndarray:
        """Exact inverse of :meth:`to_canonical`: (..., z, y, x) in this grid's order to file order."""
        self._check_ndim(array)
        lead = array.ndim - 3
        flip_axes = tuple(lead + n for n in range(3) if self.file_flips[n])
        out = np.flip(array, flip_axes) if flip_axes else array
        inverse = np.argsort(self.file_axes)
        return np.transpose(out, tuple(range(lead)) + tuple(lead + int(a) for a in inverse))

    @staticmethod
    def _check_ndim(array: np.ndarray) -> None:
        if np.ndim(array) < 3:
            raise ValueError(f"array must have at least 3 axes (..., z, y, x), got shape {np.shape(array)}")

    # ----------------------------------------------------------------------------- physical space
    def physical_point(self, index_zyx: Sequence[float]) -> tuple[float, float, float]:
        """Physical (x, y, z) LPS position in mm of array index (z, y, x) (may be fractional)."""
        index_xyz = np.asarray(index_zyx, dtype=np.float64)[::-1]
        spacing_xyz = np.asarray(self.spacing_mm, dtype=np.float64)[::-1]
        matrix = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        point = np.asarray(self.origin) + matrix @ (index_xyz * spacing_xyz)
        return tuple(float(v) for v in point)

    # ----------------------------------------------------------------------------- comparison
    def mismatch(self, other: Geometry) -> str | None:
        """Describe the first difference to ``other`` (with tolerances), or ``None`` if they match.

        Compares shape (exact), spacing and origin (``SPACING_TOL_MM`` absolute and relative),
        direction (``DIRECTION_TOL``) and the file voxel order (exact).
        """
        if self.shape != other.shape:
            return f"shape (z, y, x) {self.shape} != {other.shape}"
        tol = SPACING_TOL_MM
        if not np.allclose(self.spacing_mm, other.spacing_mm, rtol=tol, atol=tol):
            return f"spacing (z, y, x) mm {_fmt(self.spacing_mm)} != {_fmt(other.spacing_mm)}"
        if not np.allclose(self.origin, other.origin, rtol=tol, atol=tol):
            return f"origin (x, y, z) mm {_fmt(self.origin)} != {_fmt(other.origin)}"
        if not np.allclose(self.direction, other.direction, rtol=0.0, atol=DIRECTION_TOL):
            return f"direction {_fmt(self.direction)} != {_fmt(other.direction)}"
        if (self.file_axes, self.file_flips) != (other.file_axes, other.file_flips):
            return (f"file voxel order (axes {self.file_axes}, flips {self.file_flips}) != "
                    f"(axes {other.file_axes}, flips {other.file_flips})")
        return None

    def isclose(self, other: Geometry) -> bool:
        """True if the two grids match within the tolerances of :meth:`mismatch`."""
        return self.mismatch(other) is None

    # ----------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, list]:
        """JSON-able dict of all fields (lists of numbers / booleans)."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Geometry:
        """Inverse of :meth:`to_dict`. Unknown keys raise ValueError listing the valid ones."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"unknown Geometry keys {unknown}; valid keys are {valid}")
        return cls(**dict(data))


def _file_index(
    index_zyx: Sequence[int], axes: Sequence[int], flips: Sequence[bool], shape: Sequence[int]
) -> list[int]:
    """File (z, y, x) index of canonical index ``index_zyx`` (canonical ``shape``)."""
    file_index = [0, 0, 0]
    for n in range(3):
        value = shape[n] - 1 - index_zyx[n] if flips[n] else index_zyx[n]
        file_index[axes[n]] = value
    return file_index


def _fmt(values: Sequence[float]) -> str:
    """Short tuple text for messages: 7 significant digits."""
    return "(" + ", ".join(f"{v:.7g}" for v in values) + ")"

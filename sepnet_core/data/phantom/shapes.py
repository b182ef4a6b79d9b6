"""Implicit solid primitives of the phantom, evaluated point-wise on coordinate arrays.

Every shape works in the canonical patient frame (mm): ``x`` towards the patient's left, ``y``
towards posterior, ``z`` towards superior (ITK/DICOM "LPS"), origin midway between the two ear
canals on the Frankfort plane. A shape answers two questions:

* ``bbox``: an axis-aligned box ``(lo, hi)`` (each ``(x, y, z)`` in mm) that contains it, so the
  rasteriser only evaluates it on the voxels that can be inside;
* ``inside(x, y, z)``: a boolean array, ``True`` where the point lies in the solid. The three
  coordinate arrays have one common shape (any number of dimensions); the result has that shape.

Shapes may carry ``keep`` conditions (callables of ``(x, y, z)`` returning bool arrays) that are
AND-ed with the solid: this expresses intersections and cuts such as "the skull above the cranial
floor". Curved tubes (:func:`tube`) are returned as chains of short :class:`Segment` pieces, each
with its own small box, because one box around a whole mandible would cost ten times more voxels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.interpolate import CubicSpline

__all__ = ["Shape", "Ellipsoid", "Segment", "Loft", "Region", "Warped", "warp", "tube", "rotation",
           "Condition"]

Condition = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""A keep-condition: ``f(x, y, z) -> bool array`` of the coordinates' shape."""


def rotation(rx_deg: float = 0.0, ry_deg: float = 0.0, rz_deg: float = 0.0) -> np.ndarray:
    """Rotation matrix R = Rz @ Ry @ Rx for angles (degrees) about the x, y and z axes.

    Returns:
        float64 array (3, 3); ``R @ v`` rotates the column vector ``v`` (x, y, z).
    """
    ax, ay, az = np.deg2rad([rx_deg, ry_deg, rz_deg])
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


class Shape:
    """Base class: a solid with a bounding box and optional keep-conditions.

    Attributes:
        lo: Lower corner of the bounding box (x, y, z), mm, float64 (3,).
        hi: Upper corner of the bounding box (x, y, z), mm, float64 (3,).
        keep: Conditions AND-ed with the solid.
    """

    lo: np.ndarray
    hi: np.ndarray
    keep: tuple[Condition, ...] = ()
    box_cache: tuple[slice, slice, slice] | None = None  # voxel box, set by the rasteriser

    def _solid(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Boolean mask of the points (x, y, z) (mm, canonical frame) inside the shape."""
        mask = self._solid(x, y, z)
        for condition in self.keep:
            if not mask.any():
                break
            mask &= condition(x, y, z)
        return mask


class Ellipsoid(Shape):
    """A (super-)ellipsoid: ``sum_i |u_i / r_i| ** power <= 1`` in its local axes ``u = R (p - c)``.

    Args:
        centre: Centre (x, y, z), mm.
        radii: Semi-axes along the local axes, mm (all > 0).
        rot: Optional (3, 3) matrix whose rows are the local axes in the canonical frame (a rotation
            from :func:`rotation` transposed, or any orthonormal basis). ``None``: axis-aligned.
        power: Exponent; 2 is an ellipsoid, larger values give box-like superellipsoids.
    """

    def __init__(
        self,
        centre: Sequence[float],
        radii: Sequence[float],
        rot: np.ndarray | None = None,
        power: float = 2.0,
        keep: Sequence[Condition] = (),
    ) -> None:
        self.centre = np.asarray(centre, dtype=np.float64)
        self.radii = np.asarray(radii, dtype=np.float64)
        if self.radii.shape != (3,) or (self.radii <= 0).any():
            raise ValueError(f"radii must be 3 positive numbers (mm), got {radii!r}")
        self.rot = None if rot is None else np.asarray(rot, dtype=np.float64)
        self.power = float(power)
        self.keep = tuple(keep)
        if self.rot is None:
            half = self.radii
        elif self.power == 2.0:
            half = np.sqrt(((self.rot * self.radii[:, None]) ** 2).sum(axis=0))
        else:
            half = (np.abs(self.rot) * self.radii[:, None]).sum(axis=0)
        self.lo, self.hi = self.centre - half, self.centre + half

    def _solid(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        d = (x - np.float32(self.centre[0]), y - np.float32(self.centre[1]), z - np.float32(self.centre[2]))
        if self.rot is None:
            local = d
        else:
            r = self.rot.astype(np.float32)
            local = tuple(r[i, 0] * d[0] + r[i, 1] * d[1] + r[i, 2] * d[2] for i in range(3))
        if self.power == 2.0:
            total = sum((u * np.float32(1.0 / rad)) ** 2 for u, rad in zip(local, self.radii, strict=True))
        else:
            total = sum(np.abs(u * np.float32(1.0 / rad)) ** np.float32(self.power)
                        for u, rad in zip(local, self.radii, strict=True))
        return total <= 1.0


class Segment(Shape):
    """One straight piece of a tube: a swept (super-)ellipse from point ``a`` to point ``b``.

    The cross-section is ``|u / r1| ** power + |v / r2| ** power <= 1`` in the plane spanned by the
    unit vectors ``n1`` and ``n2`` (both orthogonal to ``b - a``); the radii change linearly from
    ``radii_a`` to ``radii_b``. A ``"round"`` end adds an ellipsoidal cap (so consecutive pieces of a
    bent tube join without gaps); a ``"flat"`` end cuts the tube at the end plane.
    """

    def __init__(
        self,
        a: np.ndarray,
        b: np.ndarray,
        n1: np.ndarray,
        radii_a: Sequence[float],
        radii_b: Sequence[float],
        power: float = 2.0,
        caps: tuple[str, str] = ("round", "round"),
        keep: Sequence[Condition] = (),
    ) -> None:
        self.a, self.b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        axis = self.b - self.a
        self.length = float(np.linalg.norm(axis))
        if self.length <= 0:
            raise ValueError("segment end points must differ")
        self.t = axis / self.length
        n1 = np.asarray(n1, np.float64)
        n1 = n1 - (n1 @ self.t) * self.t
        norm = np.linalg.norm(n1)
        if norm < 1e-6:
            raise ValueError("the cross-section hint n1 must not be parallel to the segment")
        self.n1 = n1 / norm
        self.n2 = np.cross(self.t, self.n1)
        self.ra, self.rb = np.asarray(radii_a, np.float64), np.asarray(radii_b, np.float64)
        self.power = float(power)
        self.caps = caps
        self.keep = tuple(keep)
        reach = float(max(self.ra.max(), self.rb.max()))
        self.lo = np.minimum(self.a, self.b) - reach
        self.hi = np.maximum(self.a, self.b) + reach

    def _solid(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        f = np.float32
        dx, dy, dz = x - f(self.a[0]), y - f(self.a[1]), z - f(self.a[2])
        along = dx * f(self.t[0]) + dy * f(self.t[1]) + dz * f(self.t[2])
        frac = np.clip(along * f(1.0 / self.length), 0.0, 1.0)
        beyond = along - frac * f(self.length)
        u = dx * f(self.n1[0]) + dy * f(self.n1[1]) + dz * f(self.n1[2])
        v = dx * f(self.n2[0]) + dy * f(self.n2[1]) + dz * f(self.n2[2])
        r1 = f(self.ra[0]) + frac * f(self.rb[0] - self.ra[0])
        r2 = f(self.ra[1]) + frac * f(self.rb[1] - self.ra[1])
        if self.power == 2.0:
            total = (u / r1) ** 2 + (v / r2) ** 2
        else:
            p = f(self.power)
            total = np.abs(u / r1) ** p + np.abs(v / r2) ** p
        total += (beyond / np.minimum(r1, r2)) ** 2
        mask = total <= 1.0
        if self.caps[0] == "flat":
            mask &= along >= 0.0
        if self.caps[1] == "flat":
            mask &= along <= f(self.length)
        return mask


def tube(
    points: Sequence[Sequence[float]],
    radii: Sequence[Sequence[float]],
    hints: Sequence[float] | Sequence[Sequence[float]] = (0.0, 0.0, 1.0),
    power: float = 2.0,
    caps: tuple[str, str] = ("round", "round"),
    step_mm: float = 4.0,
    keep: Sequence[Condition] = (),
) -> list[Segment]:
    """A tube along a smooth curve through ``points``, as a chain of :class:`Segment` pieces.

    Args:
        points: Control points (n >= 2, 3), mm; the centre line is a cubic spline through them,
            parametrised by chord length.
        radii: Cross-section radii (r1, r2) at each control point (n, 2), mm, interpolated linearly
            along the chord-length parameter.
        hints: Direction of the first cross-section axis ``n1``: one vector, or one per control
            point (interpolated); made orthogonal to the local tangent.
        power: Cross-section exponent (2: ellipse; 3-4: rounded rectangle).
        caps: End styles of the first and last piece, ``"round"`` or ``"flat"``.
        step_mm: Length of the pieces, mm.
        keep: Keep-conditions applied to every piece.

    Returns:
        The list of pieces (paint them all with the same value to draw the tube).
    """
    pts = np.asarray(points, dtype=np.float64)
    rad = np.asarray(radii, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 2 or rad.shape != (len(pts), 2):
        raise ValueError(f"points must be (n >= 2, 3) and radii (n, 2); got {pts.shape} and {rad.shape}")
    hint = np.asarray(hints, dtype=np.float64)
    if hint.ndim == 1:
        hint = np.repeat(hint[None], len(pts), axis=0)
    chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    curve = CubicSpline(chord, pts, bc_type="natural") if len(pts) > 2 else None
    count = max(1, int(np.ceil(chord[-1] / step_mm)))
    s = np.linspace(0.0, chord[-1], count + 1)
    centre = curve(s) if curve is not None else pts[0] + (pts[1] - pts[0]) * (s / chord[-1])[:, None]
    r = np.stack([np.interp(s, chord, rad[:, k]) for k in range(2)], axis=1)
    h = np.stack([np.interp(s, chord, hint[:, k]) for k in range(3)], axis=1)
    pieces = []
    for i in range(count):
        first, last = i == 0, i == count - 1
        pieces.append(Segment(
            centre[i], centre[i + 1], 0.5 * (h[i] + h[i + 1]), r[i], r[i + 1], power,
            (caps[0] if first else "round", caps[1] if last else "round"), keep,
        ))
    return pieces


class Loft(Shape):
    """A body outline lofted through horizontal super-ellipse cross-sections.

    Each table row is ``(z, cy, ax, ay_front, ay_back, power)``: at height ``z`` the section is
    ``|x / ax| ** power + |(y - cy) / ay| ** power <= 1``, with ``ay = ay_front`` for ``y < cy``
    (anterior) and ``ay_back`` behind. Values are interpolated linearly in ``z`` between rows; the
    loft is empty outside the rows' ``z`` range. ``inset`` shrinks every semi-axis by that many mm
    (the inner surface of the skin or of the fat layer).
    """

    def __init__(self, rows: Sequence[Sequence[float]], inset: float = 0.0, keep: Sequence[Condition] = ()):
        table = np.asarray(rows, dtype=np.float64)
        if table.ndim != 2 or table.shape[1] != 6 or not np.all(np.diff(table[:, 0]) > 0):
            raise ValueError("loft rows must be (n, 6) with strictly increasing z")
        self.table = table.copy()
        self.table[:, 2:5] = np.maximum(self.table[:, 2:5] - inset, 1.0)
        self.keep = tuple(keep)
        t = self.table
        self.lo = np.array([-t[:, 2].max(), (t[:, 1] - t[:, 3]).min(), t[0, 0]])
        self.hi = np.array([t[:, 2].max(), (t[:, 1] + t[:, 4]).max(), t[-1, 0]])
        # Rows resampled every LOFT_STEP_MM for a fast nearest look-up (error <= 0.125 mm in z).
        self._z = np.arange(t[0, 0], t[-1, 0] + self.LOFT_STEP_MM, self.LOFT_STEP_MM)
        self._rows = np.stack([np.interp(self._z, t[:, 0], t[:, k]) for k in range(1, 6)], axis=1)
        self._rows = self._rows.astype(np.float32)

    LOFT_STEP_MM = 0.25

    def _solid(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        t = self.table
        index = np.rint((z - np.float32(t[0, 0])) * np.float32(1.0 / self.LOFT_STEP_MM))
        index = np.clip(index, 0, len(self._z) - 1).astype(np.intp)
        cy, ax, af, ab, p = (self._rows[:, k][index] for k in range(5))
        dy = y - cy
        ay = np.where(dy < 0, af, ab)
        total = np.abs(x / ax) ** p + np.abs(dy / ay) ** p
        return (total <= 1.0) & (z >= np.float32(t[0, 0])) & (z <= np.float32(t[-1, 0]))


class Region(Shape):
    """A solid given by a function ``f(x, y, z) -> bool array`` inside an explicit bounding box."""

    def __init__(self, lo: Sequence[float], hi: Sequence[float], func: Condition,
                 keep: Sequence[Condition] = ()):
        self.lo, self.hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        self.func = func
        self.keep = tuple(keep)

    def _solid(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        lo, hi = self.lo.astype(np.float32), self.hi.astype(np.float32)
        box = ((x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2]))
        return box & np.asarray(self.func(x, y, z), dtype=bool)


class Warped(Shape):
    """A shape moved by an affine map: the point ``p`` is inside when ``M p + o`` is inside ``shape``
    (built from a linear map ``A`` about a centre ``c``: ``M = A^-1``, ``o = c - A^-1 c``; nested
    warps are composed into one).

    Args:
        shape: The shape in its own (unwarped) position.
        centre: Fixed point of the map (x, y, z), mm.
        linear: (3, 3) matrix ``A`` (canonical -> warped), invertible.
    """

    def __init__(self, shape: Shape, centre: Sequence[float], linear: np.ndarray) -> None:
        c = np.asarray(centre, np.float64)
        inverse = np.linalg.inv(np.asarray(linear, np.float64))
        matrix, offset = inverse, c - inverse @ c
        corners = np.array([[a, b, z] for a in (shape.lo[0], shape.hi[0]) for b in (shape.lo[1], shape.hi[1])
                            for z in (shape.lo[2], shape.hi[2])])
        moved = (corners - c) @ np.asarray(linear, np.float64).T + c
        if isinstance(shape, Warped):  # p -> M1 (M2 p + o2) + o1
            matrix, offset = shape.matrix @ matrix, shape.matrix @ offset + shape.offset
            shape = shape.shape
        self.shape, self.matrix, self.offset = shape, matrix, offset
        self.keep = ()
        self.lo, self.hi = moved.min(axis=0), moved.max(axis=0)

    def _solid(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        m, o = self.matrix.astype(np.float32), self.offset.astype(np.float32)
        back = [m[i, 0] * x + m[i, 1] * y + m[i, 2] * z + o[i] for i in range(3)]
        return self.shape.inside(*back)


def warp(shapes: Sequence[Shape], centre: Sequence[float], linear: np.ndarray | None) -> list[Shape]:
    """Every shape of ``shapes`` wrapped in :class:`Warped` (the list unchanged when ``linear`` is None
    or the identity)."""
    if linear is None or np.allclose(linear, np.eye(3)):
        return list(shapes)
    return [Warped(shape, centre, linear) for shape in shapes]

"""Where the patient lies in the scanner: pose, elastic deformation and the voxel grid.

A point ``w`` of the scanner ("world", LPS mm, as written in the NIfTI header) shows the canonical
anatomy point ``c = R^T (w - t) / s + u(w)``: ``s`` the head scale, ``R`` a small rotation, ``t`` a
translation and ``u`` a smooth random displacement (mm) interpolated linearly from a coarse grid of
Gaussian-smoothed noise (two fields: a fine and a coarse one). Below the head, the neck is bent
about the first cervical vertebra (:class:`Flexion`). Sub-samples (``supersample`` per voxel, evenly
spaced inside the slice along z and spread over a circle of 1/3 pixel in-plane, rotated-grid
supersampling) carry the partial-volume effect along z and in-plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["Pose", "Grid", "ElasticField", "Flexion", "Mapping", "interp_weights", "FLEX_PIVOT"]


@dataclass(frozen=True)
class Pose:
    """Rigid pose and scale of the patient.

    Attributes:
        scale: Head scale ``s`` (0.9..1.1).
        angles_deg: Rotation about x (pitch, nodding), y (roll) and z (yaw), degrees.
        shift_mm: Translation ``t`` (x, y, z), mm.
    """

    scale: float
    angles_deg: tuple[float, float, float]
    shift_mm: tuple[float, float, float]

    @property
    def matrix(self) -> np.ndarray:
        """``s R`` (3, 3): canonical -> world linear part."""
        from sepnet_core.data.phantom.shapes import rotation

        return self.scale * rotation(*self.angles_deg)

    def forward(self, points: np.ndarray) -> np.ndarray:
        """World positions (n, 3) of canonical points (n, 3), ignoring the elastic part."""
        return np.asarray(points, np.float64) @ self.matrix.T + np.asarray(self.shift_mm)


@dataclass(frozen=True)
class Grid:
    """The output voxel grid in world (LPS) mm.

    Attributes:
        shape: (z, y, x) voxels.
        spacing_mm: (z, y, x) spacing, mm.
        origin: World position (x, y, z) of voxel [0, 0, 0], mm (identity direction).
        supersample: Sub-slices per slice (odd).
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin: tuple[float, float, float]
    supersample: int = 3

    def axis(self, name: str) -> np.ndarray:
        """World coordinates (mm, float64) of the voxel centres along ``"x"`` or ``"y"``, or of the
        sub-slice centres along ``"z"`` (``shape[0] * supersample`` values, inferior first)."""
        if name == "x":
            return self.origin[0] + self.spacing_mm[2] * np.arange(self.shape[2])
        if name == "y":
            return self.origin[1] + self.spacing_mm[1] * np.arange(self.shape[1])
        n = self.supersample
        sub = (np.arange(self.shape[0] * n) - (n - 1) / 2.0) / n
        return self.origin[2] + self.spacing_mm[0] * sub

    def offsets(self) -> np.ndarray:
        """In-plane offsets (y, x) in mm of the sub-samples, one row per sub-slice of a slice: points on a
        circle of 1/3 pixel (none for ``supersample == 1``), so the samples of a voxel cover it in-plane."""
        n = self.supersample
        if n == 1:
            return np.zeros((1, 2))
        angle = np.deg2rad(90.0 + 360.0 * np.arange(n) / n)
        offsets = np.stack([np.sin(angle) * self.spacing_mm[1], np.cos(angle) * self.spacing_mm[2]], axis=1)
        return offsets / 3.0

    def index_range(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Index slices (sub-slice z, y, x) of the voxels whose centres lie in the world box [lo, hi]."""
        out = []
        for dim, name in ((2, "z"), (1, "y"), (0, "x")):
            coords = self.axis(name)
            start = int(np.searchsorted(coords, lo[dim], side="left"))
            stop = int(np.searchsorted(coords, hi[dim], side="right"))
            if stop <= start:
                return None
            out.append(slice(start, stop))
        return tuple(out)  # type: ignore[return-value]


def interp_weights(points: np.ndarray, start: float, step: float, count: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation from nodes ``start + step * m`` (m = 0..count-1) at ``points``.

    Returns:
        ``(index, weight)``: the lower node index (int64) and the weight of the upper node (float32);
        the value at a point is ``(1 - weight) * v[index] + weight * v[index + 1]``. Points outside
        the nodes are clamped to the end nodes.
    """
    f = np.clip((np.asarray(points, np.float64) - start) / step, 0.0, count - 1.000001)
    index = np.floor(f).astype(np.int64)
    return index, (f - index).astype(np.float32)


def _lerp(values: np.ndarray, axis: int, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values`` along ``axis`` (see :func:`interp_weights`)."""
    shape = [1] * values.ndim
    shape[axis] = len(weight)
    w = weight.reshape(shape)
    low = np.take(values, index, axis=axis)
    high = np.take(values, index + 1, axis=axis)
    return low + w * (high - low)


class ElasticField:
    """Smooth, volume-preserving random displacement (3 components, mm) on a coarse world grid.

    The field is the curl of a random vector potential (white noise smoothed with a Gaussian of
    1.5 nodes), so it is divergence-free: it bends and shears the anatomy without changing organ
    volumes (to first order). It is scaled to the requested standard deviation per component and
    interpolated linearly between the nodes.

    Args:
        rng: Random generator (consumed: one normal draw per node and component).
        lo, hi: World box (x, y, z) mm to cover.
        amplitude_mm: Standard deviation of each displacement component, mm.
        node_mm: Spacing of the coarse grid, mm.
    """

    def __init__(self, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray,
                 amplitude_mm: float, node_mm: float = 20.0) -> None:
        self.node = float(node_mm)
        self.start = np.asarray(lo, np.float64) - 2 * self.node
        counts = np.ceil((np.asarray(hi) - self.start) / self.node).astype(int) + 3
        self.counts = tuple(int(c) for c in counts)  # (x, y, z)
        noise = rng.standard_normal((3, self.counts[2], self.counts[1], self.counts[0]))
        ax, ay, az = (gaussian_filter(n, 1.5, mode="wrap") for n in noise)  # potential A (x, y, z)
        d = lambda f, axis: np.gradient(f, axis=axis)  # noqa: E731  array axes: 0 = z, 1 = y, 2 = x
        field = np.stack([d(az, 1) - d(ay, 0), d(ax, 0) - d(az, 2), d(ay, 2) - d(ax, 1)])  # curl A
        std = field.std()
        self.values = (field * (amplitude_mm / std if std > 0 else 0.0)).astype(np.float32)  # (3, z, y, x)

    @property
    def max_mm(self) -> float:
        """Largest displacement length anywhere (mm); linear interpolation never exceeds the nodes."""
        return float(np.sqrt((self.values.astype(np.float64) ** 2).sum(axis=0)).max())

    def local_range(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Smallest and largest displacement (x, y, z), mm, anywhere in the world box [lo, hi]
        (linear interpolation stays within the values of the nodes around the box)."""
        top = np.array(self.counts) - 1
        first = np.clip(np.floor((np.asarray(lo) - self.start) / self.node).astype(int), 0, top)
        last = np.clip(np.floor((np.asarray(hi) - self.start) / self.node).astype(int) + 1, 0, top)
        block = self.values[:, first[2]:last[2] + 1, first[1]:last[1] + 1, first[0]:last[0] + 1]
        return block.min(axis=(1, 2, 3)).astype(np.float64), block.max(axis=(1, 2, 3)).astype(np.float64)

    def sample(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Displacement on the separable grid of world axes x, y, z: float32 (3, len(z), len(y), len(x))."""
        out = self.values
        for axis, coords, dim in ((1, z, 2), (2, y, 1), (3, x, 0)):
            out = _lerp(out, axis, *interp_weights(coords, self.start[dim], self.node, self.counts[dim]))
        return out


FLEX_PIVOT = (20.0, -38.0)
"""(y, z) of the neck-flexion axis (mm, canonical): the atlanto-occipital joint, on the x axis."""


class Flexion:
    """Neck flexion: below a boundary through the first cervical vertebra the anatomy turns about the
    x axis through :data:`FLEX_PIVOT`; the head (with the mandible) stays rigid.

    The boundary runs from the pivot forwards and down under the chin (slope 0.8) and backwards and
    down (slope 0.35); the turn angle ramps from 0 to ``angle_deg`` over a logistic of ``width_mm``.

    Args:
        angle_deg: Flexion angle, degrees (positive: chin towards the chest).
        width_mm: Width of the ramp, mm.
    """

    def __init__(self, angle_deg: float, width_mm: float = 6.0) -> None:
        self.angle = float(np.deg2rad(angle_deg))
        self.width = float(width_mm)

    def weight(self, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Share (0..1) of the flexion angle at canonical (y, z): 0 in the head, 1 in the neck."""
        py, pz = FLEX_PIVOT
        dy = y - np.float32(py)
        boundary = np.float32(pz) + np.where(dy < 0, np.float32(0.8) * dy, np.float32(-0.35) * dy)
        return 1.0 / (1.0 + np.exp((z - boundary) * np.float32(1.0 / self.width)))

    def apply(self, y: np.ndarray, z: np.ndarray, sign: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Canonical (y, z) turned by ``sign * weight * angle`` about the pivot (float32 arrays)."""
        if self.angle == 0.0:
            return y, z
        py, pz = (np.float32(v) for v in FLEX_PIVOT)
        phi = (np.float32(sign * self.angle) * self.weight(y, z)).astype(np.float32)
        c, s = np.cos(phi), np.sin(phi)
        dy, dz = y - py, z - pz
        return py + c * dy - s * dz, pz + s * dy + c * dz

    def widen(self, corners: np.ndarray) -> np.ndarray:
        """Canonical box corners (n, 3) plus where the flexion may have carried them from: each corner
        turned back by its own share of the angle, and, for a box across the head/neck boundary,
        turned back by the full angle as well."""
        if self.angle == 0.0:
            return corners
        c = corners.astype(np.float32)
        weight = self.weight(c[:, 1], c[:, 2])
        out = [corners]
        shares = [weight] if np.ptp(weight) < 0.05 else [weight, np.ones_like(weight)]
        for share in shares:
            if share.max() < 1e-3:
                continue
            py, pz = FLEX_PIVOT
            phi = -self.angle * share.astype(np.float64)
            cos, sin = np.cos(phi), np.sin(phi)
            dy, dz = corners[:, 1] - py, corners[:, 2] - pz
            out.append(np.stack([corners[:, 0], py + cos * dy - sin * dz, pz + sin * dy + cos * dz], axis=1))
        return np.concatenate(out)


class Mapping:
    """World -> canonical coordinates of a grid's sub-samples, chunk by chunk.

    Args:
        pose: Rigid pose and scale.
        grid: Output grid.
        fields: Elastic displacement fields (mm, summed).
        flexion: Neck flexion, or None.
    """

    def __init__(self, pose: Pose, grid: Grid, fields: list[ElasticField] | ElasticField | None,
                 flexion: Flexion | None = None) -> None:
        if isinstance(fields, ElasticField):
            fields = [fields]
        self.pose, self.grid, self.fields = pose, grid, list(fields or [])
        self.flexion = flexion
        self.inverse = np.linalg.inv(pose.matrix).astype(np.float32)  # R^T / s
        self.x, self.y, self.z = grid.axis("x"), grid.axis("y"), grid.axis("z")
        self.offsets = grid.offsets().astype(np.float32)
        self.flex_pad = 3.0 if flexion is not None and flexion.angle != 0.0 else 0.0
        self.pad_mm = (sum(f.max_mm for f in self.fields) * pose.scale + max(grid.spacing_mm) + self.flex_pad)

    def _sub_offsets(self, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray]:
        """In-plane offsets (y, x), mm, of sub-slices k0..k1 as (k, 1, 1) arrays."""
        idx = np.arange(k0, k1) % len(self.offsets)
        return self.offsets[idx, 0][:, None, None], self.offsets[idx, 1][:, None, None]

    def canonical(self, k0: int, k1: int, rows: slice = slice(None), cols: slice = slice(None),
                  extra: ElasticField | None = None, flex: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Canonical (x, y, z) coordinates (float32, each (k1 - k0, n_rows, n_cols)) of sub-slices
        k0..k1, restricted to the voxel rows (y) and columns (x) given; ``extra`` adds one more
        displacement (the annotator's, for labels) to the canonical coordinates; ``flex=False``
        leaves out the neck flexion (bone that moves with the head)."""
        t = np.asarray(self.pose.shift_mm)
        x, y, z = self.x[cols], self.y[rows], self.z[k0:k1]
        oy, ox = self._sub_offsets(k0, k1)
        xs = (x - t[0]).astype(np.float32)[None, None, :] + ox
        ys = (y - t[1]).astype(np.float32)[None, :, None] + oy
        zs = (z - t[2]).astype(np.float32)[:, None, None]
        disp = None
        for field in self.fields:
            d = field.sample(x, y, z)
            disp = d if disp is None else disp + d
        m = self.inverse
        shape = (len(z), len(y), len(x))
        out = []
        for row in range(3):
            c = m[row, 0] * xs + m[row, 1] * ys + m[row, 2] * zs
            c = c + disp[row] if disp is not None else np.broadcast_to(c, shape)
            out.append(np.ascontiguousarray(np.broadcast_to(c, shape), dtype=np.float32))
        if flex and self.flexion is not None and self.flexion.angle != 0.0:
            out[1], out[2] = self.flexion.apply(out[1], out[2])
        if extra is not None:
            out = self.displace(out, extra, k0, k1, rows, cols)
        return out[0], out[1], out[2]

    def displace(self, coords, field: ElasticField, k0: int, k1: int, rows: slice = slice(None),
                 cols: slice = slice(None)) -> list[np.ndarray]:
        """``coords`` (canonical x, y, z of sub-slices k0..k1) plus ``field`` sampled there (new arrays)."""
        d = field.sample(self.x[cols], self.y[rows], self.z[k0:k1])
        return [coords[i] + d[i] for i in range(3)]

    def world(self, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World (x, y, z) coordinates of sub-slices k0..k1 as broadcastable float32 arrays."""
        shape = (k1 - k0, len(self.y), len(self.x))
        oy, ox = self._sub_offsets(k0, k1)
        return (np.broadcast_to(self.x.astype(np.float32)[None, None, :] + ox, shape),
                np.broadcast_to(self.y.astype(np.float32)[None, :, None] + oy, shape),
                np.broadcast_to(self.z[k0:k1].astype(np.float32)[:, None, None], shape))

    def voxel_box(self, lo: np.ndarray, hi: np.ndarray, world: bool = False, pad_mm: float = 0.0,
                  flex: bool = True):
        """Index slices of the sub-voxels that can lie in the canonical (or world) box [lo, hi]."""
        if world:
            return self.grid.index_range(np.asarray(lo), np.asarray(hi))
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                            for c in (lo[2], hi[2])])
        if flex and self.flexion is not None:
            corners = self.flexion.widen(corners)
        w = self.pose.forward(corners)
        if self.fields:  # the displacement near the box, not everywhere: shifts the box more than it grows it
            region_lo, region_hi = w.min(axis=0) - self.pad_mm, w.max(axis=0) + self.pad_mm
            d_lo, d_hi = np.zeros(3), np.zeros(3)
            for field in self.fields:
                a, b = field.local_range(region_lo, region_hi)
                d_lo, d_hi = d_lo + a, d_hi + b
            lo_c, hi_c = corners.min(axis=0) - d_hi, corners.max(axis=0) - d_lo
            corners = np.array([[a, b, c] for a in (lo_c[0], hi_c[0]) for b in (lo_c[1], hi_c[1])
                                for c in (lo_c[2], hi_c[2])])
            w = self.pose.forward(corners)
        pad = max(self.grid.spacing_mm) + self.flex_pad + pad_mm
        return self.grid.index_range(w.min(axis=0) - pad, w.max(axis=0) + pad)

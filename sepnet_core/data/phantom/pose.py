"""Where the patient lies in the scanner: pose, elastic deformation and the voxel grid.

A point ``w`` of the scanner ("world", LPS mm, as written in the NIfTI header) shows the canonical
anatomy point ``c = R^T (w - t) / s + u(w)``: ``s`` the head scale, ``R`` a small rotation, ``t`` a
translation and ``u`` a smooth random displacement (mm) interpolated linearly from a coarse grid of
Gaussian-smoothed noise. Sub-slices (``supersample`` per slice, evenly spaced inside the slice)
carry the partial-volume effect along z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["Pose", "Grid", "ElasticField", "Mapping", "interp_weights"]


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

    def sample(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Displacement on the separable grid of world axes x, y, z: float32 (3, len(z), len(y), len(x))."""
        out = self.values
        for axis, coords, dim in ((1, z, 2), (2, y, 1), (3, x, 0)):
            out = _lerp(out, axis, *interp_weights(coords, self.start[dim], self.node, self.counts[dim]))
        return out


class Mapping:
    """World -> canonical coordinates of a grid's sub-voxels, chunk by chunk."""

    def __init__(self, pose: Pose, grid: Grid, elastic: ElasticField | None) -> None:
        self.pose, self.grid, self.elastic = pose, grid, elastic
        self.inverse = np.linalg.inv(pose.matrix).astype(np.float32)  # R^T / s
        self.x, self.y, self.z = grid.axis("x"), grid.axis("y"), grid.axis("z")
        self.pad_mm = (elastic.max_mm * pose.scale if elastic is not None else 0.0) + max(grid.spacing_mm)

    def canonical(self, k0: int, k1: int, rows: slice = slice(None), cols: slice = slice(None)
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Canonical (x, y, z) coordinates (float32, each (k1 - k0, n_rows, n_cols)) of sub-slices
        k0..k1, restricted to the voxel rows (y) and columns (x) given."""
        t = np.asarray(self.pose.shift_mm)
        x, y, z = self.x[cols], self.y[rows], self.z[k0:k1]
        xs = (x - t[0]).astype(np.float32)[None, None, :]
        ys = (y - t[1]).astype(np.float32)[None, :, None]
        zs = (z - t[2]).astype(np.float32)[:, None, None]
        disp = self.elastic.sample(x, y, z) if self.elastic is not None else None
        m = self.inverse
        out = []
        for row in range(3):
            c = m[row, 0] * xs + m[row, 1] * ys + m[row, 2] * zs
            c = c + disp[row] if disp is not None else np.broadcast_to(c, (len(z), len(y), len(x)))
            out.append(np.ascontiguousarray(c, dtype=np.float32))
        return out[0], out[1], out[2]

    def world(self, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World (x, y, z) coordinates of sub-slices k0..k1 as broadcastable float32 arrays."""
        shape = (k1 - k0, len(self.y), len(self.x))
        return (np.broadcast_to(self.x.astype(np.float32)[None, None, :], shape),
                np.broadcast_to(self.y.astype(np.float32)[None, :, None], shape),
                np.broadcast_to(self.z[k0:k1].astype(np.float32)[:, None, None], shape))

    def voxel_box(self, lo: np.ndarray, hi: np.ndarray, world: bool = False):
        """Index slices of the sub-voxels that can lie in the canonical (or world) box [lo, hi]."""
        if world:
            return self.grid.index_range(np.asarray(lo), np.asarray(hi))
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                            for c in (lo[2], hi[2])])
        w = self.pose.forward(corners)
        return self.grid.index_range(w.min(axis=0) - self.pad_mm, w.max(axis=0) + self.pad_mm)

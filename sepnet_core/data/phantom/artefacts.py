"""Where the scanner artefacts of a case sit: dental fillings (and the metal they put on the grid) and
the dark band between the petrous bones. The physics is in :mod:`.scanner`; values in
``docs/phantom.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sepnet_core.data.phantom import scanner
from sepnet_core.data.phantom.anatomy import jaw_rotation
from sepnet_core.data.phantom.context import UPPER_ARCH, lower_arch

if TYPE_CHECKING:
    from sepnet_core.data.phantom.generator import CaseParams

__all__ = ["BAND_HU", "CONDYLE_AXIS", "sample_fillings", "metal_map", "petrous_band"]

BAND_HU = (-25.0, -5.0)
"""Depth of the dark band between the petrous bones, uniform, HU."""
CONDYLE_AXIS = (0.0, -13.0, -6.5)
"""A point of the jaw's hinge axis (parallel to x), mm."""


def _arch_point(arch: list, t: float) -> np.ndarray:
    """Point at the fraction ``t`` (0..1) of the length of a dental arch polyline."""
    pts = np.asarray(arch, np.float64)
    length = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    return np.array([np.interp(t * length[-1], length, pts[:, k]) for k in range(3)])


def sample_fillings(rng: np.random.Generator) -> tuple:
    """Dental fillings of a case (none in about half of the cases), mostly on molars."""
    cfg = scanner.METAL
    has_metal = rng.uniform() < cfg["probability"]
    count = int(rng.integers(cfg["fillings"][0], cfg["fillings"][1] + 1))
    out = []
    for _ in range(count):
        lower = bool(rng.uniform() < 0.5)
        t = float(rng.choice([rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0), rng.uniform(0.3, 0.7)],
                             p=[0.4, 0.4, 0.2]))
        radius, atten = float(rng.uniform(*cfg["radius_mm"])), float(rng.uniform(*cfg["attenuation"]))
        arch = lower_arch() if lower else list(UPPER_ARCH)
        point = _arch_point(arch, t) + np.array([0.0, 0.0, 2.0 if lower else -2.0])  # occlusal surface
        out.append((tuple(float(v) for v in point), radius, atten, lower))
    return tuple(out) if has_metal else ()


def metal_map(params: CaseParams) -> np.ndarray:
    """Attenuation of the dental fillings in excess of water (1/mm) on the case's grid (z, y, x),
    float32.

    A voxel holds metal when its centre lies inside a filling (spheres, moved with the pose and,
    in the lower jaw, with the jaw opening).
    """
    grid = params.grid
    out = np.zeros(grid.shape, np.float32)
    if not params.fillings:
        return out
    z = grid.origin[2] + grid.spacing_mm[0] * np.arange(grid.shape[0])
    y, x = grid.axis("y"), grid.axis("x")
    hinge = np.asarray(CONDYLE_AXIS)
    jaw = jaw_rotation(params.variation)
    for centre, radius, atten, lower in params.fillings:
        c = np.asarray(centre)
        if lower:
            c = (c - hinge) @ jaw.T + hinge
        w = params.pose.forward(c[None])[0]
        r = radius * params.pose.scale
        zi = np.nonzero(np.abs(z - w[2]) <= r)[0]
        for k in zi:
            rr = r**2 - (z[k] - w[2]) ** 2
            inside = (x[None, :] - w[0]) ** 2 + (y[:, None] - w[1]) ** 2 <= rr
            out[k][inside] = np.maximum(out[k][inside], atten * scanner.MU_WATER_PER_MM)
    return out


def petrous_band(params: CaseParams) -> np.ndarray:
    """The dark band between the petrous bones on the case's grid, HU."""
    grid = params.grid
    left, right = params.pose.forward(np.array([[33.0, 2.0, -1.0], [-33.0, 2.0, -1.0]]))
    z = grid.origin[2] + grid.spacing_mm[0] * np.arange(grid.shape[0])
    return scanner.petrous_band(grid.shape, (z, grid.axis("y"), grid.axis("x")), left, right, params.band_hu)

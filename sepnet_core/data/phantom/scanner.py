"""Scanner effects of the phantom: dental metal streaks, the band between the petrous bones, and
noise with a CT-like noise power spectrum whose level follows the patient's size.

Metal streaks are simulated per axial slice, in 2D parallel-beam geometry: the metal's line
integrals are projected (:func:`project_points`), a nonlinear detector model (beam hardening and
photon starvation: ``P (1 - exp(-p / P))`` plus noise growing with ``exp(p / 2)``, up to a floor)
turns them into measured values, and the difference to the true line integrals is reconstructed by
filtered back-projection (:func:`fbp`) and added to the slice in HU. Only the error is
reconstructed, so the cost is one back-projection per slice with metal. All values are listed in
``docs/phantom.md``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import zoom

__all__ = ["MU_WATER_PER_MM", "METAL", "project_points", "fbp", "metal_streaks", "nps_noise",
           "water_diameter_mm", "noise_scale", "petrous_band"]

MU_WATER_PER_MM = 0.019
"""Linear attenuation of water at the effective energy of a 120 kVp beam (about 70 keV), 1/mm."""

METAL = {"probability": 0.5, "fillings": (1, 4), "radius_mm": (2.5, 4.0), "attenuation": (50.0, 120.0),
         "saturation": 1.0, "starvation": 0.03, "starved": 4.0, "angles": 180, "max_pixels": 256}
"""Dental metal: share of cases with fillings, fillings per case (uniform, inclusive), filling radius
(mm), attenuation relative to water, saturation line integral ``P`` of the detector model, relative
photon-starvation noise and the metal line integral where it stops growing (the detector's floor),
projection angles over 180 degrees, and the largest reconstruction grid
(finer slices are reconstructed on a coarser grid and interpolated)."""


def project_points(values: np.ndarray, ys: np.ndarray, xs: np.ndarray, angles: np.ndarray, bins: int,
                   bin_mm: float) -> np.ndarray:
    """Parallel-beam line integrals of point masses (a sparse image) at the given angles.

    Args:
        values: Mass of each point: attenuation (1/mm) times pixel area (mm^2), shape (n,).
        ys, xs: Point positions relative to the rotation centre, mm, shape (n,).
        angles: Projection angles, radians, shape (a,).
        bins: Detector bins, centred on the rotation centre.
        bin_mm: Detector bin width, mm.

    Returns:
        Sinogram (a, bins) of line integrals (dimensionless), float64.
    """
    s = xs[None, :] * np.cos(angles)[:, None] + ys[None, :] * np.sin(angles)[:, None]
    f = s / bin_mm + (bins - 1) / 2.0
    lo = np.floor(f).astype(np.int64)
    w = f - lo
    out = np.zeros((len(angles), bins + 1))
    rows = np.broadcast_to(np.arange(len(angles))[:, None], lo.shape)
    v = np.broadcast_to(values[None, :] / bin_mm, lo.shape)
    ok = (lo >= 0) & (lo < bins - 1)
    np.add.at(out, (rows[ok], lo[ok]), (v * (1 - w))[ok])
    np.add.at(out, (rows[ok], lo[ok] + 1), (v * w)[ok])
    return out[:, :bins]


def fbp(sinogram: np.ndarray, angles: np.ndarray, bin_mm: float, shape: tuple[int, int], pixel_mm: float
        ) -> np.ndarray:
    """Filtered back-projection (ramp filter with a Hann window) of a parallel-beam sinogram.

    Args:
        sinogram: (a, bins) line integrals over angles spanning 180 degrees.
        angles: (a,) radians.
        bin_mm: Detector bin width, mm.
        shape: Output (rows y, columns x), centred on the rotation centre.
        pixel_mm: Output pixel size, mm.

    Returns:
        Attenuation image (y, x), 1/mm, float32.
    """
    n_angles, bins = sinogram.shape
    size = 1 << int(math.ceil(math.log2(2 * bins)))
    freq = np.fft.rfftfreq(size, d=bin_mm)
    ramp = np.abs(freq) * (0.5 + 0.5 * np.cos(np.pi * freq / freq[-1]))
    filtered = np.fft.irfft(np.fft.rfft(sinogram, size, axis=1) * ramp, size, axis=1)[:, :bins]
    ys = (np.arange(shape[0]) - (shape[0] - 1) / 2.0) * pixel_mm
    xs = (np.arange(shape[1]) - (shape[1] - 1) / 2.0) * pixel_mm
    image = np.zeros(shape, np.float64)
    centre = (bins - 1) / 2.0
    for k, angle in enumerate(angles):
        f = (xs[None, :] * math.cos(angle) + ys[:, None] * math.sin(angle)) / bin_mm + centre
        lo = np.clip(np.floor(f).astype(np.int64), 0, bins - 2)
        w = np.clip(f - lo, 0.0, 1.0)
        row = filtered[k]
        image += row[lo] + w * (row[lo + 1] - row[lo])
    return (image * (np.pi / n_angles)).astype(np.float32)


def metal_streaks(metal_mu: np.ndarray, pixel_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Streak image (HU) caused by the metal in one axial slice.

    Args:
        metal_mu: (y, x) attenuation of the metal in excess of water, 1/mm (0 where no metal).
        pixel_mm: Pixel size, mm.
        rng: Random generator for the photon-starvation noise.

    Returns:
        (y, x) float32 error image in HU (zero when the slice holds no metal).
    """
    ny, nx = metal_mu.shape
    if not metal_mu.any():
        return np.zeros(metal_mu.shape, np.float32)
    factor = max(1, int(math.ceil(max(ny, nx) / METAL["max_pixels"])))
    rec_shape, rec_pixel = (int(math.ceil(ny / factor)), int(math.ceil(nx / factor))), pixel_mm * factor
    iy, ix = np.nonzero(metal_mu)
    ys = (iy - (ny - 1) / 2.0) * pixel_mm
    xs = (ix - (nx - 1) / 2.0) * pixel_mm
    bins = int(math.ceil(math.hypot(*rec_shape))) + 4
    angles = np.linspace(0.0, np.pi, METAL["angles"], endpoint=False)
    p = project_points(metal_mu[iy, ix] * pixel_mm**2, ys, xs, angles, bins, rec_pixel)
    sat = METAL["saturation"]
    measured = sat * (1.0 - np.exp(-p / sat))
    starved = np.expm1(np.minimum(p, METAL["starved"]) / 2.0)
    measured += METAL["starvation"] * starved * rng.standard_normal(p.shape)
    error = fbp(measured - p, angles, rec_pixel, rec_shape, rec_pixel) * np.float32(1000.0 / MU_WATER_PER_MM)
    if factor > 1:
        error = zoom(error, (ny / rec_shape[0], nx / rec_shape[1]), order=1)[:ny, :nx]
    return error.astype(np.float32)


def nps_noise(rng: np.random.Generator, shape: tuple[int, int, int], pixel_mm: float,
              cutoff_lp_mm: float = 0.45) -> np.ndarray:
    """Unit-variance noise with a CT-like noise power spectrum in each axial slice.

    Filtered back-projection shapes white detector noise with the ramp filter and the kernel's
    roll-off: ``NPS(f) ~ f exp(-2 (f / cutoff)^2)`` (radial frequency ``f``, lp/mm), a spectrum that
    peaks at mid frequencies, so the noise is grainy and correlated over a few pixels, not white.

    Args:
        rng: Random generator.
        shape: (z, y, x) voxels.
        pixel_mm: In-plane pixel size, mm.
        cutoff_lp_mm: Roll-off frequency of the reconstruction kernel, lp/mm.

    Returns:
        float32 (z, y, x) noise, each slice scaled to unit standard deviation.
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    fy = np.fft.fftfreq(shape[1], d=pixel_mm)[:, None]
    fx = np.fft.rfftfreq(shape[2], d=pixel_mm)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    amplitude = (np.sqrt(f) * np.exp(-((f / cutoff_lp_mm) ** 2))).astype(np.float32)
    noise = np.fft.irfft2(np.fft.rfft2(white, axes=(1, 2)) * amplitude, s=shape[1:], axes=(1, 2))
    std = noise.std(axis=(1, 2), keepdims=True)
    return (noise / np.where(std > 0, std, 1.0)).astype(np.float32)


def water_diameter_mm(image: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Water-equivalent diameter (mm) of each axial slice of a CT (z, y, x) in HU (AAPM report 220).

    Pixels above -300 HU (the patient, not the head-rest foam) count with their attenuation relative to water.
    """
    rel = np.where(image > -300.0, image / 1000.0 + 1.0, 0.0)
    area = rel.sum(axis=(1, 2)) * pixel_mm**2
    return 2.0 * np.sqrt(area / np.pi)


def noise_scale(diameter_mm: np.ndarray, reference_mm: float = 160.0, limits: tuple[float, float] = (0.5, 3.0)
                ) -> np.ndarray:
    """Noise SD factor for water-equivalent diameters (mm): ``exp(mu_water (D - D_ref) / 2)`` (the
    detected photons fall as ``exp(-mu D)``, the noise SD grows as their inverse square root), clipped."""
    return np.clip(np.exp(MU_WATER_PER_MM * (np.asarray(diameter_mm) - reference_mm) / 2.0), *limits)


def petrous_band(shape: tuple[int, int, int], axes: tuple[np.ndarray, np.ndarray, np.ndarray],
                 left: np.ndarray, right: np.ndarray, depth_hu: float, width_mm: float = 3.5,
                 height_mm: float = 4.0) -> np.ndarray:
    """The dark beam-hardening band between the petrous bones (the "Hounsfield bar"), HU (<= 0).

    Args:
        shape: (z, y, x) voxels.
        axes: World coordinates (mm) of the slices (z), rows (y) and columns (x).
        left, right: World (x, y, z) of the two petrous bones, mm.
        depth_hu: Band depth (negative), HU.
        width_mm: Gaussian sigma across the band, in-plane, mm.
        height_mm: Gaussian sigma along z, mm.

    Returns:
        float32 (z, y, x).
    """
    z, y, x = axes
    a, b = np.asarray(left, np.float64), np.asarray(right, np.float64)
    d = b[:2] - a[:2]
    t = np.clip(((x[None, :] - a[0]) * d[0] + (y[:, None] - a[1]) * d[1]) / float(d @ d), 0.0, 1.0)
    dist2 = (x[None, :] - a[0] - t * d[0]) ** 2 + (y[:, None] - a[1] - t * d[1]) ** 2
    plane = np.exp(-dist2 / (2 * width_mm**2))
    zc = 0.5 * (a[2] + b[2])
    profile = np.exp(-((z - zc) ** 2) / (2 * height_mm**2))
    out = depth_hu * profile[:, None, None] * plane[None]
    return out.astype(np.float32).reshape(shape)

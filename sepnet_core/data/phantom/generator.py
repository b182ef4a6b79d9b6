"""Generate one phantom case: sample the patient, rasterise tissues and labels, simulate the CT.

Pipeline of :func:`generate_case` (all values in ``docs/phantom.md``):

1. Draw the case parameters (:func:`sample_case`): head scale, pose, organ sizes and positions,
   elastic field, field of view, pixel spacing, number of slices.
2. Rasterise on sub-slices (3 per slice): every tissue layer, then every organ label (priority order,
   restricted to the organ's allowed tissues), chunk by chunk, each shape only inside its bounding box.
3. CT physics: tissue mean CT numbers averaged over the sub-slices (slice-thickness partial volume),
   a smooth within-tissue texture, an in-plane Gaussian blur (scanner point-spread function combined
   with the pixel's own width), white Gaussian noise, rounding and clipping to [-1024, 3071] HU.
4. Labels: the majority of the 3 sub-slices (the centre one on a 3-way tie).

The same seed and profile always give the same arrays (all randomness comes from
``numpy.random.SeedSequence(seed)``, one child stream per purpose).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from sepnet_core.data.geometry import Geometry
from sepnet_core.data.io import Case
from sepnet_core.data.phantom.anatomy import Layer, Variation, organ_layers, sample_variation
from sepnet_core.data.phantom.context import VERTEX_Z, body_back, context_layers, couch_layers
from sepnet_core.data.phantom.pose import ElasticField, Grid, Mapping, Pose
from sepnet_core.data.phantom.tissues import CASE_SHIFT_HU, TISSUE_ID, TISSUES, tissue_tables

__all__ = ["PhantomProfile", "PHANTOM_PROFILES", "CaseParams", "get_profile", "sample_case", "generate_case",
           "HU_RANGE", "DEFAULT_NOISE_HU", "POSE_LIMITS", "ELASTIC_MM", "TEXTURE_MM"]

HU_RANGE = (-1024.0, 3071.0)
"""CT numbers are clipped to this range (12-bit CT), HU."""
DEFAULT_NOISE_HU = 20.0
"""Default standard deviation of the white scanner noise, HU."""
POSE_LIMITS = {"scale": (0.9, 1.1), "pitch_deg": 4.0, "roll_deg": 3.0, "yaw_deg": 5.0, "shift_mm": 10.0}
"""Uniform ranges of the patient pose: head scale, +-rotation about x/y/z (degrees), +-shift (mm)."""
ELASTIC_MM = 2.5
"""Standard deviation of each elastic displacement component, mm (divergence-free, 20 mm grid)."""
TEXTURE_MM = 1.5
"""Correlation length (Gaussian sigma, mm) of the within-tissue texture."""


@dataclass(frozen=True)
class PhantomProfile:
    """Output grid of a phantom profile.

    Attributes:
        name: Profile name.
        matrix: In-plane voxels (square, y = x).
        pixel_mm: Nominal in-plane spacing, mm; each case uses ``pixel_mm * scale * U(0.97, 1.03)``
            clipped to ``pixel_range_mm`` (the scanner's field of view follows the head).
        pixel_range_mm: (min, max) in-plane spacing, mm.
        slice_mm: Slice spacing and thickness, mm.
        slices: (min, max) number of slices, inclusive.
        fov: ``"head"``: from ``top_mm`` (above the temporal lobes) down to ``bottom_mm`` (below the
            mandible, with some spinal cord), canonical heights scaled with the head, the number of
            slices following (clipped to ``slices``); ``"vertex"``: from ``top_mm`` above the top of
            the head (skin) downwards, ``slices`` drawn uniformly.
        top_mm: (min, max) canonical height of the top slice, mm (``"vertex"``: above the vertex).
        bottom_mm: (min, max) canonical height of the bottom slice, mm (``"head"`` only).
        centre_y_mm: Canonical y (mm) put at the centre of the field of view.
        supersample: Sub-slices per slice for the partial-volume effect (odd).
        psf_mm: Gaussian sigma of the scanner's in-plane point-spread function, mm.
        chunk_slices: Slices rasterised at once (memory/speed trade-off only).
    """

    name: str
    matrix: int
    pixel_mm: float
    pixel_range_mm: tuple[float, float]
    slice_mm: float
    slices: tuple[int, int]
    fov: str
    centre_y_mm: float
    top_mm: tuple[float, float]
    bottom_mm: tuple[float, float] = (0.0, 0.0)
    supersample: int = 3
    psf_mm: float = 0.6
    chunk_slices: int = 8


PHANTOM_PROFILES: dict[str, PhantomProfile] = {
    "cpu": PhantomProfile("cpu", matrix=128, pixel_mm=2.0, pixel_range_mm=(1.8, 2.2), slice_mm=3.0,
                          slices=(48, 80), fov="head", centre_y_mm=4.0, top_mm=(58.0, 64.0),
                          bottom_mm=(-132.0, -120.0)),
    "smoke": PhantomProfile("smoke", matrix=64, pixel_mm=4.0, pixel_range_mm=(3.6, 4.4), slice_mm=3.0,
                            slices=(48, 80), fov="head", centre_y_mm=4.0, top_mm=(58.0, 64.0),
                            bottom_mm=(-132.0, -120.0)),
    "structseg": PhantomProfile("structseg", matrix=512, pixel_mm=1.0, pixel_range_mm=(0.9, 1.1),
                                slice_mm=3.0, slices=(100, 150), fov="vertex", centre_y_mm=15.0,
                                top_mm=(5.0, 20.0)),
}
"""The profiles: ``structseg`` (512 x 512 at about 1 mm, 3 mm slices, 100-150 slices, head to upper
chest), ``cpu`` (the same anatomy on 128 x 128 at about 2 mm, 3 mm slices, about 55-70 slices from
above the temporal lobes to below the mandible) and ``smoke`` (the ``cpu`` field of view on 64 x 64 at
about 4 mm, for CI runs of the whole pipeline; the smallest organs may be missing in some cases)."""


def get_profile(name: str) -> PhantomProfile:
    """The profile called ``name``; an unknown name raises ValueError listing the valid ones."""
    try:
        return PHANTOM_PROFILES[name]
    except (KeyError, TypeError):
        valid = ", ".join(PHANTOM_PROFILES)
        raise ValueError(f"profile={name!r} is not a phantom profile; valid: {valid}") from None


@dataclass(frozen=True)
class CaseParams:
    """Everything random about one case except the noise fields."""

    pose: Pose
    variation: Variation
    grid: Grid
    hu_shift: float


def sample_case(rng: np.random.Generator, profile: PhantomProfile) -> CaseParams:
    """Draw pose, anatomy variation and grid of one case (fixed draw order)."""
    lim = POSE_LIMITS
    scale = float(rng.uniform(*lim["scale"]))
    angles = (float(rng.uniform(-1, 1) * lim["pitch_deg"]), float(rng.uniform(-1, 1) * lim["roll_deg"]),
              float(rng.uniform(-1, 1) * lim["yaw_deg"]))
    shift = tuple(float(v) for v in rng.uniform(-1, 1, 3) * np.array([lim["shift_mm"]] * 2 + [100.0]))
    pose = Pose(scale, angles, shift)  # type: ignore[arg-type]
    variation = sample_variation(rng, scale)
    pixel = float(np.clip(profile.pixel_mm * scale * rng.uniform(0.97, 1.03), *profile.pixel_range_mm))
    sz = profile.slice_mm
    if profile.fov == "head":
        top_c, bottom_c = float(rng.uniform(*profile.top_mm)), float(rng.uniform(*profile.bottom_mm))
        slices = int(np.clip(round(scale * (top_c - bottom_c) / sz) + 1, *profile.slices))
        bottom = pose.forward(np.array([[0.0, 0.0, bottom_c]]))[0, 2]
    else:
        slices = int(rng.integers(profile.slices[0], profile.slices[1] + 1))
        top = pose.forward(np.array([[0.0, -4.0, VERTEX_Z + float(rng.uniform(*profile.top_mm))]]))[0, 2]
        bottom = top - (slices - 1) * sz
    centre = pose.forward(np.array([[0.0, profile.centre_y_mm, 0.0]]))[0, :2] + rng.uniform(-3, 3, 2)
    n = profile.matrix
    origin = (float(centre[0] - (n - 1) / 2 * pixel), float(centre[1] - (n - 1) / 2 * pixel), float(bottom))
    grid = Grid((slices, n, n), (sz, pixel, pixel), origin, profile.supersample)
    return CaseParams(pose, variation, grid, float(rng.normal(0.0, CASE_SHIFT_HU)))


def _couch_top(params: CaseParams, elastic: ElasticField) -> float:
    """World y of the couch surface: just behind the most posterior body point in the field of view."""
    pose, grid = params.pose, params.grid
    zs = np.arange(-470.0, 140.0, 4.0)
    back = body_back(zs)
    points = np.stack([np.zeros_like(zs), back, zs], axis=1)[np.isfinite(back)]
    world = pose.forward(points)
    z_lo, z_hi = grid.axis("z")[0] - 50, grid.axis("z")[-1] + 50
    inside = (world[:, 2] >= z_lo) & (world[:, 2] <= z_hi)
    back = world[inside, 1] if inside.any() else world[:, 1]
    return float(back.max() + elastic.max_mm * pose.scale + 1.0)


def _paint(layers: list[Layer], target: np.ndarray, k0: int, window: tuple[int, int], coords, world_coords,
           tissue: np.ndarray | None = None) -> None:
    """Paint ``layers`` into the chunk ``target`` (sub-slices k0..; see module docstring).

    Patient-frame shapes use ``coords``, which cover only the rows and columns from ``window``
    (y0, x0) on; world-frame shapes use ``world_coords`` over the whole chunk.
    """
    k1 = k0 + target.shape[0]
    for layer in layers:
        allowed = None
        if layer.allowed is not None:
            allowed = np.zeros(len(TISSUES), dtype=bool)
            allowed[list(layer.allowed)] = True
        y0, x0 = (0, 0) if layer.world else window
        src = world_coords if layer.world else coords
        for shape in layer.shapes:
            box = shape.box_cache
            if box is None or box[0].stop <= k0 or box[0].start >= k1:
                continue
            local = (slice(max(box[0].start, k0) - k0, min(box[0].stop, k1) - k0),
                     slice(max(box[1].start - y0, 0), min(box[1].stop - y0, src[0].shape[1])),
                     slice(max(box[2].start - x0, 0), min(box[2].stop - x0, src[0].shape[2])))
            if any(part.stop <= part.start for part in local):
                continue
            x, y, z = (c[local] for c in src)
            mask = shape.inside(x, y, z)
            full = (local[0], slice(local[1].start + y0, local[1].stop + y0),
                    slice(local[2].start + x0, local[2].stop + x0))
            if allowed is not None:
                mask &= allowed[tissue[full]]
            target[full][mask] = layer.value


def _window(layers: list[Layer], k0: int, k1: int) -> tuple[slice, slice]:
    """Rows and columns covered by the patient-frame shapes that reach sub-slices k0..k1."""
    lo, hi = [np.inf, np.inf], [-np.inf, -np.inf]
    for layer in layers:
        if layer.world:
            continue
        for shape in layer.shapes:
            box = shape.box_cache
            if box is None or box[0].stop <= k0 or box[0].start >= k1:
                continue
            for d in (0, 1):
                lo[d], hi[d] = min(lo[d], box[d + 1].start), max(hi[d], box[d + 1].stop)
    if lo[0] == np.inf:
        return slice(0, 0), slice(0, 0)
    return slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1]))


def rasterise(params: CaseParams, elastic: ElasticField, chunk_slices: int = 8):
    """Tissue-mean, texture-weight and label volumes of a case (before noise and blur).

    Returns:
        ``(mean_hu, texture_hu, label)``: float32, float32 and uint8 arrays of shape ``grid.shape``;
        the first two are averages over the sub-slices of each slice.
    """
    grid = params.grid
    mapping = Mapping(params.pose, grid, elastic)
    before, after = context_layers(params.variation)
    organ_tissue, organ_labels = organ_layers(params.variation)
    tissues = before[:1] + couch_layers(_couch_top(params, elastic)) + before[1:] + organ_tissue + after
    for layer in tissues + organ_labels:
        for shape in layer.shapes:
            shape.box_cache = mapping.voxel_box(shape.lo, shape.hi, world=layer.world)
    means, textures = tissue_tables(params.hu_shift)
    means[TISSUE_ID["parotid"]] += np.float32(params.variation.parotid_hu)
    n_sub, (nz, ny, nx) = grid.supersample, grid.shape
    mean_hu = np.empty(grid.shape, np.float32)
    texture_hu = np.empty(grid.shape, np.float32)
    label = np.empty(grid.shape, np.uint8)
    for s0 in range(0, nz, chunk_slices):
        s1 = min(nz, s0 + chunk_slices)
        k0, k1 = s0 * n_sub, s1 * n_sub
        rows, cols = _window(tissues + organ_labels, k0, k1)
        coords = mapping.canonical(k0, k1, rows, cols)
        world_coords = mapping.world(k0, k1)
        tissue = np.zeros((k1 - k0, ny, nx), np.uint8)
        organs = np.zeros_like(tissue)
        window = (rows.start, cols.start)
        _paint(tissues, tissue, k0, window, coords, world_coords)
        _paint(organ_labels, organs, k0, window, coords, world_coords, tissue=tissue)
        sub = (s1 - s0, n_sub, ny, nx)
        mean_hu[s0:s1] = means[tissue].reshape(sub).mean(axis=1)
        texture_hu[s0:s1] = textures[tissue].reshape(sub).mean(axis=1)
        organs = organs.reshape(sub)
        if n_sub == 1:
            label[s0:s1] = organs[:, 0]
        else:
            first, centre, last = organs[:, 0], organs[:, n_sub // 2], organs[:, -1]
            label[s0:s1] = np.where(first == last, first, centre)
    return mean_hu, texture_hu, label


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: tuple[float, ...]
                  ) -> np.ndarray:
    """Unit-variance Gaussian noise smoothed with a Gaussian of ``sigma_vox`` voxels (float32)."""
    field = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_vox, truncate=3.0)
    std = float(field.std())
    return field / np.float32(std if std > 0 else 1.0)


def generate_case(
    seed: int, profile: str = "cpu", case_id: str = "", noise_hu: float = DEFAULT_NOISE_HU
) -> Case:
    """Generate one phantom CT with its 22-organ label map.

    Args:
        seed: Non-negative integer; the same seed and profile always give identical arrays.
        profile: ``"cpu"`` or ``"structseg"`` (:data:`PHANTOM_PROFILES`).
        case_id: Name stored in the returned case (e.g. ``"phantom_000"``).
        noise_hu: Standard deviation of the white scanner noise, HU (0..200; default 20).

    Returns:
        A :class:`~sepnet_core.data.io.Case`: ``image`` float32 (z, y, x) whole-number HU in
        [-1024, 3071], ``label`` uint8 (z, y, x) with values 0..22, ``geometry`` with the grid
        (identity direction, LPS origin, spacing (z, y, x) mm).

    Raises:
        ValueError: Unknown profile, negative seed, or noise outside 0..200 HU.

    Example:
        >>> case = generate_case(0, "cpu", "phantom_000")  # doctest: +SKIP
        >>> case.image.shape[1:]  # doctest: +SKIP
        (128, 128)
    """
    prof = get_profile(profile)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    if not (isinstance(noise_hu, (int, float)) and math.isfinite(noise_hu) and 0.0 <= noise_hu <= 200.0):
        raise ValueError(f"noise_hu={noise_hu!r} must be a number in 0..200 HU")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4)]
    params = sample_case(streams[0], prof)
    grid = params.grid
    world = np.array([grid.axis("x")[[0, -1]], grid.axis("y")[[0, -1]], grid.axis("z")[[0, -1]]])
    elastic = ElasticField(streams[1], world[:, 0], world[:, 1], ELASTIC_MM)
    mean_hu, texture_hu, label = rasterise(params, elastic, prof.chunk_slices)
    sz, sy, sx = grid.spacing_mm
    texture = _smooth_noise(streams[2], grid.shape, (TEXTURE_MM / sz, TEXTURE_MM / sy, TEXTURE_MM / sx))
    image = mean_hu + texture_hu * texture
    del texture, texture_hu, mean_hu
    blur = [math.sqrt(prof.psf_mm**2 + s**2 / 12.0) / s for s in (sy, sx)]
    image = gaussian_filter(image, (0.0, blur[0], blur[1]), truncate=3.0)
    if noise_hu > 0:
        image += streams[3].standard_normal(grid.shape, dtype=np.float32) * np.float32(noise_hu)
    np.rint(image, out=image)
    np.clip(image, *HU_RANGE, out=image)
    geometry = Geometry(shape=grid.shape, spacing_mm=grid.spacing_mm, origin=grid.origin)
    return Case(case_id=case_id, image=image, label=label, geometry=geometry)

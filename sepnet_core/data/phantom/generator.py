"""Generate one phantom case: sample the patient, rasterise tissues and labels, simulate the CT.

Pipeline of :func:`generate_case` (all values in ``docs/phantom.md``):

1. Draw the case parameters (:func:`sample_case`): head scale, pose, neck flexion, jaw opening,
   organ sizes, stretches and positions, annotator's limits, field of view (pixel size, in-plane
   offset and slice range drawn independently of the head), dental fillings, petrous band.
2. Rasterise on 3 sub-samples per voxel (spread over the slice thickness and over a third of a pixel
   in-plane): every tissue layer, then every organ label (priority order, restricted to the organ's
   allowed tissues, on coordinates moved by the annotator's smooth displacement), chunk by chunk,
   each shape only inside its bounding box.
3. CT physics: tissue mean CT numbers averaged over the sub-samples (partial volume), a smooth
   within-tissue texture, dental metal, an in-plane Gaussian blur (scanner point-spread function
   combined with the pixel's own width), metal streaks (:mod:`.scanner`), the dark band between the
   petrous bones, noise with a CT-like noise power spectrum scaled with each slice's water-equivalent
   diameter, rounding and clipping to [-1024, 3071] HU.
4. Labels: the majority of the 3 sub-samples (the centre one on a 3-way tie).

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
from sepnet_core.data.phantom import scanner
from sepnet_core.data.phantom.anatomy import Layer, Variation, organ_layers, sample_variation
from sepnet_core.data.phantom.artefacts import BAND_HU, metal_map, petrous_band, sample_fillings
from sepnet_core.data.phantom.context import VERTEX_Z, body_back, context_layers, couch_layers
from sepnet_core.data.phantom.pose import ElasticField, Flexion, Grid, Mapping, Pose
from sepnet_core.data.phantom.tissues import CASE_SHIFT_HU, TISSUE_ID, TISSUES, tissue_tables

__all__ = ["PhantomProfile", "PHANTOM_PROFILES", "CaseParams", "get_profile", "sample_case", "generate_case",
           "HU_RANGE", "DEFAULT_NOISE_HU", "POSE_LIMITS", "ELASTIC_MM", "TEXTURE_MM", "COARSE_ELASTIC",
           "ANNOTATION_MM", "FLEXION_DEG", "ORGAN_BOX", "BAND_HU", "case_params", "metal_map"]

HU_RANGE = (-1024.0, 3071.0)
"""CT numbers are clipped to this range (12-bit CT), HU."""
DEFAULT_NOISE_HU = 20.0
"""Default noise standard deviation, HU, at the reference water-equivalent diameter (160 mm)."""
POSE_LIMITS = {"scale": (0.9, 1.1), "pitch_deg": 4.0, "roll_deg": 3.0, "yaw_deg": 5.0, "shift_mm": 10.0}
"""Uniform ranges of the patient pose: head scale, +-rotation about x/y/z (degrees), +-shift (mm)."""
ELASTIC_MM = 2.5
"""Standard deviation of each elastic displacement component, mm (divergence-free, 20 mm grid)."""
COARSE_ELASTIC = (4.0, 60.0)
"""Second, coarse elastic field: SD of each component (mm) and node spacing (mm)."""
ANNOTATION_MM = (1.0, 15.0)
"""Annotator's displacement of the label boundaries: SD per component (mm) and node spacing (mm)."""
FLEXION_DEG = 12.0
"""Neck flexion about the first cervical vertebra: U(-12, 12) degrees."""
ORGAN_BOX = ((-62.0, -96.0, -100.0), (62.0, 40.0, 60.0))
"""Canonical box (x, y, z), mm, holding every organ; the in-plane offset keeps it inside the field of view."""

TEXTURE_MM = 1.5
"""Correlation length (Gaussian sigma, mm) of the within-tissue texture."""


@dataclass(frozen=True)
class PhantomProfile:
    """Output grid of a phantom profile.

    Attributes:
        name: Profile name.
        matrix: In-plane voxels (square, y = x).
        pixel_mm: Nominal in-plane spacing, mm.
        pixel_range_mm: (min, max) in-plane spacing, mm; each case draws uniformly in it, independently
            of the head size.
        slice_mm: Slice spacing and thickness, mm.
        slices: (min, max) number of slices, inclusive.
        fov: ``"head"``: from ``top_mm`` (above the temporal lobes) down to ``bottom_mm`` (below the
            mandible, with some spinal cord), canonical heights drawn independently of the head, the
            number of slices following (clipped to ``slices``); ``"vertex"``: from ``top_mm`` above
            the top of the head (skin) downwards, ``slices`` drawn uniformly.
        top_mm: (min, max) canonical height of the top slice, mm (``"vertex"``: above the vertex).
        bottom_mm: (min, max) canonical height of the bottom slice, mm (``"head"`` only).
        centre_y_mm: Canonical y (mm) put at the centre of the field of view before the offset.
        offset_mm: In-plane offset of the field of view, U(-offset, offset) per axis, clipped so the
            organs (:data:`ORGAN_BOX`) stay inside.
        cutoff: Probabilities of a field of view that starts inside the temporal lobes and of one that
            ends inside the mandible (``"head"`` only).
        cut_top_mm, cut_bottom_mm: Ranges of the top / bottom slice heights of such cases, mm.
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
    offset_mm: float = 25.0
    cutoff: tuple[float, float] = (0.0, 0.0)
    cut_top_mm: tuple[float, float] = (26.0, 40.0)
    cut_bottom_mm: tuple[float, float] = (-82.0, -66.0)
    supersample: int = 3
    psf_mm: float = 0.6
    chunk_slices: int = 8


PHANTOM_PROFILES: dict[str, PhantomProfile] = {
    "cpu": PhantomProfile("cpu", matrix=128, pixel_mm=2.1, pixel_range_mm=(1.8, 2.4), slice_mm=3.0,
                          slices=(48, 90), fov="head", centre_y_mm=-10.0, top_mm=(54.0, 100.0),
                          bottom_mm=(-165.0, -120.0), cutoff=(0.1, 0.08)),
    "smoke": PhantomProfile("smoke", matrix=64, pixel_mm=4.2, pixel_range_mm=(3.6, 4.8), slice_mm=3.0,
                            slices=(48, 90), fov="head", centre_y_mm=-10.0, top_mm=(54.0, 100.0),
                            bottom_mm=(-165.0, -120.0)),
    "structseg": PhantomProfile("structseg", matrix=512, pixel_mm=1.0, pixel_range_mm=(0.9, 1.1),
                                slice_mm=3.0, slices=(100, 150), fov="vertex", centre_y_mm=15.0,
                                top_mm=(-10.0, 40.0)),
}
"""The profiles: ``structseg`` (512 x 512 at about 1 mm, 3 mm slices, 100-150 slices, head to upper
chest), ``cpu`` (the same anatomy on 128 x 128 at 1.8-2.4 mm, 3 mm slices, about 50-90 slices from
above the temporal lobes to below the mandible; 18 % of the cases cut off the top of the temporal
lobes or the bottom of the mandible) and ``smoke`` (the ``cpu`` field of view on 64 x 64 at about
4 mm, no cut-offs, for CI runs of the whole pipeline; the smallest organs may be missing)."""


def get_profile(name: str) -> PhantomProfile:
    """The profile called ``name``; an unknown name raises ValueError listing the valid ones."""
    try:
        return PHANTOM_PROFILES[name]
    except (KeyError, TypeError):
        valid = ", ".join(PHANTOM_PROFILES)
        raise ValueError(f"profile={name!r} is not a phantom profile; valid: {valid}") from None


@dataclass(frozen=True)
class CaseParams:
    """Everything random about one case except the noise fields.

    Attributes:
        pose: Rigid pose and head scale.
        variation: Anatomical variation (organs, jaw, annotator's limits).
        grid: Output grid.
        hu_shift: Calibration offset of the soft-tissue means, HU.
        flexion_deg: Neck flexion, degrees.
        cutoff: ``""``, ``"top"`` (the field of view starts inside the temporal lobes) or ``"bottom"``
            (it ends inside the mandible).
        fillings: Dental fillings: canonical centre (x, y, z) mm, radius mm, attenuation relative
            to water, and whether the tooth is in the (opening) lower jaw.
        band_hu: Depth of the band between the petrous bones, HU.
    """

    pose: Pose
    variation: Variation
    grid: Grid
    hu_shift: float
    flexion_deg: float = 0.0
    cutoff: str = ""
    fillings: tuple[tuple[tuple[float, float, float], float, float, bool], ...] = ()
    band_hu: float = 0.0


def sample_case(rng: np.random.Generator, profile: PhantomProfile) -> CaseParams:
    """Draw pose, anatomy variation and grid of one case (fixed draw order)."""
    lim = POSE_LIMITS
    scale = float(rng.uniform(*lim["scale"]))
    angles = (float(rng.uniform(-1, 1) * lim["pitch_deg"]), float(rng.uniform(-1, 1) * lim["roll_deg"]),
              float(rng.uniform(-1, 1) * lim["yaw_deg"]))
    shift = tuple(float(v) for v in rng.uniform(-1, 1, 3) * np.array([lim["shift_mm"]] * 2 + [100.0]))
    pose = Pose(scale, angles, shift)  # type: ignore[arg-type]
    variation = sample_variation(rng, scale)
    flexion = float(rng.uniform(-FLEXION_DEG, FLEXION_DEG))
    pixel = float(rng.uniform(*profile.pixel_range_mm))
    sz = profile.slice_mm
    cut_draw, top_draw, bottom_draw = float(rng.uniform()), float(rng.uniform()), float(rng.uniform())
    cutoff = ""
    if profile.fov == "head":
        top_c = profile.top_mm[0] + top_draw * (profile.top_mm[1] - profile.top_mm[0])
        bottom_c = profile.bottom_mm[0] + bottom_draw * (profile.bottom_mm[1] - profile.bottom_mm[0])
        if cut_draw < profile.cutoff[0]:
            cutoff, top_c = "top", profile.cut_top_mm[0] + top_draw * np.diff(profile.cut_top_mm)[0]
        elif cut_draw < profile.cutoff[0] + profile.cutoff[1]:
            cut = profile.cut_bottom_mm
            cutoff, bottom_c = "bottom", cut[0] + bottom_draw * (cut[1] - cut[0])
        top = pose.forward(np.array([[0.0, 0.0, top_c]]))[0, 2]
        bottom = pose.forward(np.array([[0.0, 0.0, bottom_c]]))[0, 2]
        slices = int(np.clip(round((top - bottom) / sz) + 1, *profile.slices))
    else:
        slices = int(rng.integers(profile.slices[0], profile.slices[1] + 1))
        top_c = VERTEX_Z + profile.top_mm[0] + top_draw * (profile.top_mm[1] - profile.top_mm[0])
        top = pose.forward(np.array([[0.0, -4.0, top_c]]))[0, 2]
        bottom = top - (slices - 1) * sz
    n = profile.matrix
    centre = pose.forward(np.array([[0.0, profile.centre_y_mm, 0.0]]))[0, :2]
    lo, hi = np.array(ORGAN_BOX[0]), np.array(ORGAN_BOX[1])
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    world = pose.forward(corners)[:, :2]
    half = (n - 1) / 2 * pixel - 4.0
    offset = rng.uniform(-1, 1, 2) * profile.offset_mm
    for d in range(2):  # keep every organ inside the field of view
        low, high = world[:, d].max() - half - centre[d], world[:, d].min() + half - centre[d]
        offset[d] = float(np.clip(offset[d], low, high)) if low <= high else 0.5 * (low + high)
    centre = centre + offset
    origin = (float(centre[0] - (n - 1) / 2 * pixel), float(centre[1] - (n - 1) / 2 * pixel), float(bottom))
    grid = Grid((slices, n, n), (sz, pixel, pixel), origin, profile.supersample)
    hu_shift = float(rng.normal(0.0, CASE_SHIFT_HU))
    fillings = sample_fillings(rng)
    band = float(rng.uniform(*BAND_HU))
    return CaseParams(pose, variation, grid, hu_shift, flexion, cutoff, fillings, band)


def case_params(seed: int, profile: str = "cpu") -> CaseParams:
    """The parameters :func:`generate_case` draws for ``seed`` and ``profile`` (cheap: nothing rasterised)."""
    stream = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(8)[0])
    return sample_case(stream, get_profile(profile))


def _couch_top(params: CaseParams, max_mm: float) -> float:
    """World y of the couch surface: just behind the most posterior body point in the field of view."""
    pose, grid = params.pose, params.grid
    zs = np.arange(-470.0, 140.0, 4.0)
    back = body_back(zs)
    points = np.stack([np.zeros_like(zs), back, zs], axis=1)[np.isfinite(back)].astype(np.float32)
    y, z = Flexion(params.flexion_deg).apply(points[:, 1], points[:, 2], sign=-1.0)
    world = pose.forward(np.stack([points[:, 0], y, z], axis=1))
    z_lo, z_hi = grid.axis("z")[0] - 50, grid.axis("z")[-1] + 50
    inside = (world[:, 2] >= z_lo) & (world[:, 2] <= z_hi)
    back = world[inside, 1] if inside.any() else world[:, 1]
    return float(back.max() + max_mm * pose.scale + 1.0)


def _paint(layers: list[Layer], target: np.ndarray, k0: int, window: tuple[int, int], coords, world_coords,
           tissue: np.ndarray | None = None, head_coords=None) -> None:
    """Paint ``layers`` into the chunk ``target`` (sub-slices k0..; see module docstring).

    Patient-frame shapes use ``coords`` (``head_coords``, without the neck flexion, for layers that
    move with the head), which cover only the rows and columns from ``window`` (y0, x0) on;
    world-frame shapes use ``world_coords`` over the whole chunk.
    """
    k1 = k0 + target.shape[0]
    for layer in layers:
        allowed = None
        if layer.allowed is not None:
            allowed = np.zeros(len(TISSUES), dtype=bool)
            allowed[list(layer.allowed)] = True
        y0, x0 = (0, 0) if layer.world else window
        src = coords if not layer.head or head_coords is None else head_coords
        src = world_coords if layer.world else src
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


def _reaches(layers: list[Layer], k0: int, k1: int) -> bool:
    """Whether a shape of ``layers`` reaches sub-slices k0..k1 (by its voxel box)."""
    return any(s.box_cache is not None and s.box_cache[0].start < k1 and s.box_cache[0].stop > k0
               for layer in layers for s in layer.shapes)


def rasterise(params: CaseParams, fields: list[ElasticField], chunk_slices: int = 8,
              annotation: ElasticField | None = None):
    """Tissue-mean, texture-weight and label volumes of a case (before noise and blur).

    Args:
        params: The case.
        fields: Elastic displacement fields of the anatomy.
        chunk_slices: Slices rasterised at once.
        annotation: The annotator's displacement (labels only), or None.

    Returns:
        ``(mean_hu, texture_hu, label)``: float32, float32 and uint8 arrays of shape ``grid.shape``;
        the first two are averages over the sub-samples of each voxel.
    """
    grid = params.grid
    mapping = Mapping(params.pose, grid, fields, Flexion(params.flexion_deg))
    before, after = context_layers(params.variation)
    organ_tissue, organ_labels = organ_layers(params.variation)
    tissues = (before[:1] + couch_layers(_couch_top(params, sum(f.max_mm for f in fields))) + before[1:]
               + organ_tissue + after)
    annot_pad = annotation.max_mm if annotation is not None else 0.0
    head_layers = [layer for layer in tissues + organ_labels if layer.head]
    for layer in tissues + organ_labels:
        pad = annot_pad if layer in organ_labels else 0.0
        for shape in layer.shapes:
            shape.box_cache = mapping.voxel_box(shape.lo, shape.hi, world=layer.world, pad_mm=pad,
                                                flex=not layer.head)
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
        head = None
        if params.flexion_deg != 0.0 and _reaches(head_layers, k0, k1):
            head = mapping.canonical(k0, k1, rows, cols, flex=False)
        world_coords = mapping.world(k0, k1)
        tissue = np.zeros((k1 - k0, ny, nx), np.uint8)
        organs = np.zeros_like(tissue)
        window = (rows.start, cols.start)
        _paint(tissues, tissue, k0, window, coords, world_coords, head_coords=head)
        if annotation is not None:
            coords = mapping.displace(coords, annotation, k0, k1, rows, cols)
            head = None if head is None else mapping.displace(head, annotation, k0, k1, rows, cols)
        _paint(organ_labels, organs, k0, window, coords, world_coords, tissue=tissue, head_coords=head)
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
    seed: int, profile: str = "cpu", case_id: str = "", noise_hu: float = DEFAULT_NOISE_HU,
    artefacts: bool = True, annotator: bool = True,
) -> Case:
    """Generate one phantom CT with its 22-organ label map.

    Args:
        seed: Non-negative integer; the same seed and profile always give identical arrays.
        profile: ``"cpu"`` or ``"structseg"`` (:data:`PHANTOM_PROFILES`).
        case_id: Name stored in the returned case (e.g. ``"phantom_000"``).
        noise_hu: Noise standard deviation at the reference water-equivalent diameter of 160 mm, HU
            (0..200; default 20); each slice scales it with its own diameter.
        artefacts: Simulate the metal streaks and the band between the petrous bones (False: the same
            case without them, every other array value drawn identically; for tests and figures).
        annotator: Displace the label boundaries as an annotator would (False: labels follow the
            tissue exactly; the image and the annotator's organ limits are unchanged).

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
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(8)]
    params = sample_case(streams[0], prof)
    grid = params.grid
    world = np.array([grid.axis("x")[[0, -1]], grid.axis("y")[[0, -1]], grid.axis("z")[[0, -1]]])
    lo, hi = world[:, 0], world[:, 1]
    fields = [ElasticField(streams[1], lo, hi, ELASTIC_MM),
              ElasticField(streams[4], lo, hi, COARSE_ELASTIC[0], node_mm=COARSE_ELASTIC[1])]
    annotation = ElasticField(streams[5], lo, hi, ANNOTATION_MM[0], node_mm=ANNOTATION_MM[1])
    if not annotator:
        annotation = None
    mean_hu, texture_hu, label = rasterise(params, fields, prof.chunk_slices, annotation)
    sz, sy, sx = grid.spacing_mm
    texture = _smooth_noise(streams[2], grid.shape, (TEXTURE_MM / sz, TEXTURE_MM / sy, TEXTURE_MM / sx))
    image = mean_hu + texture_hu * texture
    del texture, texture_hu, mean_hu
    metal = metal_map(params)
    if metal.any():
        image = np.where(metal > 0, np.float32(HU_RANGE[1]), image)
    blur = [math.sqrt(prof.psf_mm**2 + s**2 / 12.0) / s for s in (sy, sx)]
    image = gaussian_filter(image, (0.0, blur[0], blur[1]), truncate=3.0)
    if artefacts:
        for k in np.nonzero(metal.any(axis=(1, 2)))[0]:
            image[k] += scanner.metal_streaks(metal[k], sx, streams[6])
        image += petrous_band(params)
    if noise_hu > 0:
        scale = scanner.noise_scale(scanner.water_diameter_mm(image, sx)).astype(np.float32)
        level = np.float32(noise_hu) * scale
        image += scanner.nps_noise(streams[3], grid.shape, sx) * level[:, None, None]
    np.rint(image, out=image)
    np.clip(image, *HU_RANGE, out=image)
    geometry = Geometry(shape=grid.shape, spacing_mm=grid.spacing_mm, origin=grid.origin)
    return Case(case_id=case_id, image=image, label=label, geometry=geometry)


"""Measurements of generated cases: where organs lie in voxel space, and anatomy read off the labels.

These functions work on any CT (z, y, x) in HU with a StructSeg label map and its spacing (mm), so
the same numbers can be taken on real data. Used by the tests and by ``docs/phantom.md``:

* :func:`organ_centre_spread`: how much organ centres move between cases, in voxels;
* :func:`gonial_angle`: the mandible's angle and its lower border's slope;
* :func:`temporal_stem_gap_mm`, :func:`eye_protrusion_mm`, :func:`middle_ear_width_mm`,
  :func:`fissure_contrast_hu`;
* :func:`survey`: all of them over a generated data set
  (``python -m sepnet_core.data.phantom.measure``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import distance_transform_edt

from sepnet_core.organs import ORGANS, organ_by_key

__all__ = ["survey", "render_canonical", "organ_centres", "organ_centre_spread", "gonial_angle",
           "temporal_stem_gap_mm", "eye_protrusion_mm", "middle_ear_width_mm", "fissure_contrast_hu"]


def render_canonical(variation, z_mm: Sequence[float], y_mm: tuple[float, float], x_mm: tuple[float, float],
                     pixel_mm: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Tissue CT numbers and labels of the anatomy itself: no pose, elastic field, flexion, noise or
    annotator, sampled at one point per voxel in the canonical frame (for checking the design).

    Args:
        variation: A :class:`~sepnet_core.data.phantom.anatomy.Variation` (jaw, sizes, limits...).
        z_mm: Heights of the axial planes, mm (canonical).
        y_mm, x_mm: (start, stop) of the rows and columns, mm.
        pixel_mm: Pixel size, mm.

    Returns:
        ``(mean_hu, label)``: float32 and uint8 arrays (len(z_mm), rows, columns).
    """
    from sepnet_core.data.phantom.generator import CaseParams, rasterise
    from sepnet_core.data.phantom.pose import Grid, Pose

    ny, nx = int(round((y_mm[1] - y_mm[0]) / pixel_mm)), int(round((x_mm[1] - x_mm[0]) / pixel_mm))
    hu, labels = [], []
    for z in z_mm:
        grid = Grid((1, ny, nx), (1.0, pixel_mm, pixel_mm), (x_mm[0], y_mm[0], float(z)), 1)
        params = CaseParams(Pose(1.0, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)), variation, grid, 0.0)
        mean, _, label = rasterise(params, [])
        hu.append(mean[0])
        labels.append(label[0])
    return np.stack(hu), np.stack(labels)


def organ_centres(label: np.ndarray) -> dict[str, np.ndarray]:
    """Centroid (z, y, x), voxels, of every organ present in ``label`` (keys of :mod:`sepnet_core.organs`)."""
    out = {}
    for organ in ORGANS:
        idx = np.argwhere(label == organ.label)
        if len(idx):
            out[organ.key] = idx.mean(axis=0)
    return out


def organ_centre_spread(labels: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Standard deviation over cases of each organ's centroid, in voxels (z, y, x).

    Args:
        labels: Label maps (z, y, x) of several cases (at least 2 holding the organ).

    Returns:
        Organ key -> SD (z, y, x) in voxels over the cases that hold the organ, plus ``"median"``: the
        median over organs. In-plane spread is usually summarised as ``hypot(sd_y, sd_x) / sqrt(2)``.
    """
    centres: dict[str, list[np.ndarray]] = {}
    for label in labels:
        for key, c in organ_centres(np.asarray(label)).items():
            centres.setdefault(key, []).append(c)
    out = {key: np.std(np.array(v), axis=0, ddof=1) for key, v in centres.items() if len(v) >= 2}
    if not out:
        raise ValueError("no organ is present in two or more of the label maps")
    out["median"] = np.median(np.array(list(out.values())), axis=0)
    return out


def _sagittal_points(mask: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The mask projected on the sagittal plane: (y, z) in mm of every occupied (z, y) cell."""
    proj = mask.any(axis=2)
    zi, yi = np.nonzero(proj)
    return yi * float(spacing[1]), zi * float(spacing[0])


def gonial_angle(label: np.ndarray, spacing: Sequence[float], key: str = "mandible_l") -> tuple[float, float]:
    """Gonial angle and lower-border slope of one mandible half, from its label.

    The half is projected on the sagittal plane. The posterior border of the ramus is the line fitted
    to the most posterior point of each row from 15 to 45 mm below the top of the condyle; the lower
    border is the line fitted to the lowest point of each column over the front 60 % of the body
    (behind the chin's curve, in front of the angle). The gonial angle is the angle between the
    two lines at the angle of the jaw; the slope is the lower border's angle to the axial plane.

    Args:
        label: Label map (z, y, x), y growing posterior, z superior.
        spacing: (z, y, x) spacing, mm.
        key: ``"mandible_l"`` or ``"mandible_r"``.

    Returns:
        ``(gonial_deg, lower_border_deg)``.

    Raises:
        ValueError: The organ is missing or too small to fit.
    """
    mask = np.asarray(label) == organ_by_key(key).label
    if mask.sum() < 20:
        raise ValueError(f"{key} is missing or too small to measure")
    y, z = _sagittal_points(mask, spacing)
    top, front, back = z.max(), y.min(), y.max()
    rows = [(zz, y[z == zz].max()) for zz in np.unique(z) if top - 45.0 <= zz <= top - 15.0]
    cols = [(yy, z[y == yy].min()) for yy in np.unique(y) if front + 0.15 * (back - front) <= yy
            <= front + 0.6 * (back - front)]
    if len(rows) < 3 or len(cols) < 3:
        raise ValueError(f"{key}: too few rows or columns to fit the borders")
    rz, ry = np.array(rows).T
    ramus = np.polyfit(rz, ry, 1)[0]  # dy/dz along the posterior border
    cy, cz = np.array(cols).T
    border = np.polyfit(cy, cz, 1)[0]  # dz/dy along the lower border
    up = np.array([ramus, 1.0])  # from the angle up the ramus: (dy, dz)
    forward = np.array([-1.0, -border])  # from the angle forwards (y decreasing) along the lower border
    cos = float(up @ forward / np.linalg.norm(up) / np.linalg.norm(forward))
    gonial = float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    return gonial, float(np.degrees(np.arctan(border)))


def temporal_stem_gap_mm(label: np.ndarray, spacing: Sequence[float], key: str = "temporal_lobe_l") -> float:
    """Shortest distance (mm) from the brain stem's label to a temporal lobe's label (0 when touching)."""
    stem = np.asarray(label) == organ_by_key("brain_stem").label
    lobe = np.asarray(label) == organ_by_key(key).label
    if not stem.any() or not lobe.any():
        raise ValueError(f"brain stem or {key} missing")
    dist = distance_transform_edt(~stem, sampling=spacing)
    return float(dist[lobe].min())


def eye_protrusion_mm(image: np.ndarray, label: np.ndarray, spacing: Sequence[float], key: str = "eye_l",
                      bone_hu: float = 250.0) -> float:
    """How far the front of an eye lies in front of the lateral orbital rim, mm (Hertel's measure).

    On the axial slice through the eye's centre: the eye's most anterior labelled row, and the most
    anterior bone (> ``bone_hu`` on that slice or a neighbour: the orbital wall is thin) in the columns
    0-20 mm lateral of the eye's lateral edge.

    Args:
        image: CT (z, y, x), HU; label: labels (z, y, x); spacing: (z, y, x) mm.
        key: ``"eye_l"`` (lateral = growing x) or ``"eye_r"``.
    """
    eye = np.asarray(label) == organ_by_key(key).label
    if not eye.any():
        raise ValueError(f"{key} missing")
    k = int(round(np.argwhere(eye)[:, 0].mean()))
    rows, cols = np.nonzero(eye[k])
    sy, sx = float(spacing[1]), float(spacing[2])
    front = rows.min() * sy
    lateral = 1 if key.endswith("_l") else -1
    edge = cols.max() if lateral > 0 else cols.min()
    span = np.arange(1, int(20.0 / sx) + 1)
    band = np.clip(edge + lateral * span, 0, image.shape[2] - 1)
    bone = np.asarray(image)[max(k - 1, 0):k + 2].max(axis=0)[:, band] > bone_hu  # thin wall: 3 slices
    bone[: max(rows.min() - int(10 / sy), 0)] = False
    bone_rows = np.nonzero(bone.any(axis=1))[0]
    if bone_rows.size == 0:
        raise ValueError(f"no bone lateral of {key}")
    return float(bone_rows.min() * sy - front)


def middle_ear_width_mm(label: np.ndarray, spacing: Sequence[float], key: str = "middle_ear_l") -> float:
    """Mean transverse (x) width of a middle ear's label over its (z, y) rows, mm."""
    mask = np.asarray(label) == organ_by_key(key).label
    widths = mask.sum(axis=2)
    if not widths.any():
        raise ValueError(f"{key} missing")
    return float(widths[widths > 0].mean() * float(spacing[2]))


def fissure_contrast_hu(image: np.ndarray, label: np.ndarray, key: str = "temporal_lobe_l") -> float:
    """Mean HU inside a temporal lobe's label minus the mean HU of the voxel just above its top.

    For every (y, x) column of the lobe's lateral half, the voxel one slice above the lobe's highest
    labelled voxel is taken: a fissure of CSF bounding the lobe from above makes it darker than the
    lobe (positive result); brain continuing above gives about zero.
    """
    mask = np.asarray(label) == organ_by_key(key).label
    if not mask.any():
        raise ValueError(f"{key} missing")
    cols = mask.any(axis=0)
    xs = np.nonzero(cols.any(axis=0))[0]
    lateral = xs >= np.median(xs) if key.endswith("_l") else xs <= np.median(xs)
    keep = np.zeros(cols.shape[1], bool)
    keep[xs[lateral]] = True
    top = mask.shape[0] - 1 - np.argmax(mask[::-1], axis=0)
    yy, xx = np.nonzero(cols & keep[None, :] & (top < mask.shape[0] - 1))
    if yy.size == 0:
        raise ValueError(f"{key} reaches the top slice: nothing above it to measure")
    above = np.asarray(image)[top[yy, xx] + 1, yy, xx]
    return float(np.asarray(image)[mask].mean() - above.mean())


def _safe(func, *args) -> float:
    try:
        return float(func(*args))
    except ValueError:  # organ cut off by the field of view
        return float("nan")


def survey(cases: int = 16, seed: int = 0, profile: str = "cpu") -> dict:
    """Generate ``cases`` phantom cases (as ``sepnet phantom --seed SEED``) and measure them.

    Returns:
        Dict: ``centre_sd_slices`` and ``centre_sd_pixels`` (median over organs of the SD of the
        organ centre over cases; in-plane as ``hypot(sd_y, sd_x) / sqrt(2)``), ``centre_sd_zyx``,
        medians over cases and sides of ``gonial_deg``, ``lower_border_deg`` (jaw opening and head
        pitch subtracted), ``temporal_stem_gap_mm``, ``eye_protrusion_mm``, ``middle_ear_width_mm``,
        ``fissure_contrast_hu``; the shares of cases with ``metal`` and with a ``cutoff``; the seconds
        per case (process CPU time); ``volumes_cm3``: organ -> (min, mean, max) over the cases whose
        field of view cuts nothing off.
    """
    import time

    from sepnet_core.data.phantom.dataset import case_seed
    from sepnet_core.data.phantom.generator import case_params, generate_case

    labels, rows, seconds, volumes = [], [], [], []
    metal = cut = 0
    for i in range(cases):
        s = case_seed(seed, i)
        start = time.process_time()
        case = generate_case(s, profile)
        seconds.append(time.process_time() - start)
        p = case_params(s, profile)
        metal += bool(p.fillings)
        cut += bool(p.cutoff)
        labels.append(case.label)
        sp = case.geometry.spacing_mm
        if not p.cutoff:
            counts = np.bincount(case.label.ravel(), minlength=len(ORGANS) + 1)
            volumes.append(counts[1:] * float(np.prod(sp)) / 1000.0)
        for side in "lr":
            g, b = (float("nan"), float("nan"))
            try:
                g, b = gonial_angle(case.label, sp, f"mandible_{side}")
                b -= p.variation.jaw_deg + p.pose.angles_deg[0]
            except ValueError:
                pass
            rows.append([g, b, _safe(temporal_stem_gap_mm, case.label, sp, f"temporal_lobe_{side}"),
                         _safe(eye_protrusion_mm, case.image, case.label, sp, f"eye_{side}"),
                         _safe(middle_ear_width_mm, case.label, sp, f"middle_ear_{side}"),
                         _safe(fissure_contrast_hu, case.image, case.label, f"temporal_lobe_{side}")])
    spread = organ_centre_spread(labels)["median"]
    med = np.nanmedian(np.array(rows), axis=0)
    names = ("gonial_deg", "lower_border_deg", "temporal_stem_gap_mm", "eye_protrusion_mm",
             "middle_ear_width_mm", "fissure_contrast_hu")
    return {"cases": cases, "seed": seed, "profile": profile,
            "centre_sd_zyx": [round(float(v), 2) for v in spread],
            "centre_sd_slices": round(float(spread[0]), 2),
            "centre_sd_pixels": round(float(np.hypot(spread[1], spread[2]) / np.sqrt(2)), 2),
            **{name: round(float(v), 1) for name, v in zip(names, med, strict=True)},
            "metal_share": metal / cases, "cutoff_share": cut / cases,
            "seconds_per_case": round(float(np.mean(seconds)), 2),
            "volumes_cm3": {o.key: [round(float(f(np.array(volumes)[:, o.label - 1])), 3)
                                    for f in (np.min, np.mean, np.max)] for o in ORGANS} if volumes else {}}


if __name__ == "__main__":  # pragma: no cover - documented command of docs/phantom.md
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Measure a generated phantom data set.", allow_abbrev=False)
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args()
    print(json.dumps(survey(args.cases, args.seed, args.profile), indent=1))

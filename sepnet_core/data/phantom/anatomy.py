"""The 22 organs-at-risk of the phantom, defined analytically in the canonical head frame (mm).

Frame: ``x`` towards the patient's LEFT, ``y`` posterior, ``z`` superior (ITK/DICOM LPS), origin
midway between the two external ear canals (porion) on the Frankfort plane (``z = 0``). "Eye L"
therefore has ``x > 0``: written with an identity direction matrix it lies at large array column
index, the patient's left in LPS (and the right-hand side of a radiological display).

Organs are painted as labels in :data:`ORGAN_PRIORITY` order (later wins where shapes overlap).
Soft organs carry an ``allowed`` tissue set: the label is only set where the voxel's tissue is one
of them, so for example the temporal lobe never covers bone or CSF. Per-case variation enters
through :class:`Variation`: organ sizes are damped against the global head scale
(``size ~ scale ** ORGAN_SIZE_EXPONENT``) and jittered, paired organs get independent sizes and
positions (left/right asymmetry), every organ also gets a volume-neutral per-axis stretch
(:data:`ANISO_SD`) and a position offset (:data:`SHIFT_MM`), the mandible opens about the condyles
(``jaw_deg``), and the annotator's limits (:data:`LIMITS`) decide where the brain stem ends and the
spinal cord begins, and how far the optic nerves, chiasm and cord are drawn. All nominal values are
listed in ``docs/phantom.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sepnet_core.data.phantom.shapes import Ellipsoid, Shape, rotation, tube, warp
from sepnet_core.data.phantom.tissues import TISSUE_ID

__all__ = [
    "Layer", "Variation", "ORGAN_SIZE_EXPONENT", "ORGAN_JITTER", "SHIFT_MM", "ANISO_SD", "LIMITS", "JAW_DEG",
    "ORGAN_PRIORITY", "sample_variation", "organ_layers", "side_point", "stem_line", "sylvian_z", "CORD_LINE",
    "CORD_RADII", "CONDYLE", "MANDIBLE_LINE",
]

ORGAN_SIZE_EXPONENT = 0.3
"""Organ dimensions follow the global head scale ``s`` as ``s ** 0.3`` (positions follow ``s``)."""

ORGAN_JITTER: dict[str, float] = {
    "brain_stem": 0.03, "eye": 0.012, "lens": 0.025, "optic_nerve": 0.04, "optic_chiasm": 0.05,
    "temporal_lobe": 0.04, "pituitary": 0.05, "parotid": 0.045, "inner_ear": 0.04, "middle_ear": 0.05,
    "tmj": 0.04, "spinal_cord": 0.03, "mandible": 0.025,
}
"""Standard deviation of the log linear size factor per organ (clipped at 2 SD); drawn per side."""

SHIFT_MM: dict[str, float] = {
    "brain_stem": 2.0, "eye": 2.0, "lens": 0.0, "optic_nerve": 2.0, "optic_chiasm": 2.0, "temporal_lobe": 3.0,
    "pituitary": 1.5, "parotid": 3.5, "inner_ear": 1.5, "middle_ear": 1.5, "tmj": 1.5, "spinal_cord": 1.5,
    "mandible": 1.5,
}
"""Standard deviation (mm, per axis, clipped at 2 SD) of the per-organ, per-side position offset
(relative organ shifts; organs held by bone move less). The lens moves with its eye."""

ANISO_SD: dict[str, float] = {
    "brain_stem": 0.10, "eye": 0.04, "lens": 0.05, "optic_nerve": 0.0, "optic_chiasm": 0.12,
    "temporal_lobe": 0.12, "pituitary": 0.12, "parotid": 0.15, "inner_ear": 0.08, "middle_ear": 0.08,
    "tmj": 0.10, "spinal_cord": 0.0, "mandible": 0.05,
}
"""Standard deviation of the per-axis log stretch (x, y, z) of each organ about its centre; the three
draws are centred (their mean removed), so the stretch changes the shape, not the volume. Eyes and
lenses are nearly spherical; nerves and the cord are tubes and keep their length."""

JAW_DEG = (0.0, 12.0)
"""Uniform range of the jaw opening (rotation of the mandible and lower teeth about the condyles), deg."""

LIMITS: dict[str, tuple[float, float]] = {
    "stem_top": (-8.0, 2.0), "stem_cord": (-6.0, 8.0), "nerve_back": (-4.0, 2.0), "chiasm_z": (0.0, 1.2),
    "cord_bottom": (-190.0, -110.0),
}
"""Annotator's limits, uniform ranges (mm): ``stem_top``: cranial end of the brain stem relative to
the top of the midbrain; ``stem_cord``: the brain stem / spinal cord border relative to the foramen
magnum (z = -30); ``nerve_back``: posterior end of each optic nerve label relative to where it joins
the chiasm (y = -15); ``chiasm_z``: cut from the top and bottom of the chiasm; ``cord_bottom``: the
height where the cord contour stops (below the field of view in most ``cpu`` cases)."""

CONDYLE = (50.0, -13.0, -6.5)
"""Centre of the left mandibular condyle (x, y, z), mm: the jaw opens about the axis through both."""

MANDIBLE_LINE = (
    (50, -13, -11), (49, -19, -24), (48, -25, -38), (47, -29, -52), (45, -31, -62), (41, -38, -68.5),
    (36, -48, -72.5), (27, -58, -76), (15, -67, -78.5), (0, -73, -80.5), (-8, -71.5, -80.5),
)
"""Centre line of a mandible half (x, y, z), mm: condyle neck, ramus (down and slightly forwards),
angle, body (down and forwards to the chin: lower border about 26 deg to the Frankfort plane)."""

MANDIBLE_RADII = ((5.0, 4.0), (10.0, 4.6), (14.5, 4.8), (15.5, 5.2), (13.0, 6.0), (11.0, 7.0), (12.0, 7.2),
                  (13.0, 7.2), (15.0, 7.4), (17.0, 7.6), (17.0, 7.6))
"""Cross-section radii along :data:`MANDIBLE_LINE`: ramus (antero-posterior, transverse), body
(vertical, transverse), mm."""


def tentorium_z(y: np.ndarray) -> np.ndarray:
    """Height (z, mm) of the tentorium above canonical ``y``: from the petrous ridges (y = 5) it rises
    backwards (0.5 mm per mm); the temporal lobes lie above it, the cerebellum below."""
    step = np.float32(40.0) / (1.0 + np.exp(-np.clip(y - np.float32(5.0), -30.0, 30.0)))
    return np.float32(-40.0) + step + np.float32(0.5) * np.maximum(
        y - np.float32(5.0), np.float32(0.0))


def sylvian_z(y: np.ndarray) -> np.ndarray:
    """Height (z, mm) of the Sylvian fissure's lower edge above canonical ``y``: the fissure bounds the
    temporal lobe from above and rises towards the back (0.3 mm per mm)."""
    return np.float32(38.0) + np.float32(0.3) * (y + np.float32(5.0))

ORGAN_PRIORITY: tuple[str, ...] = (
    "temporal_lobe", "brain_stem", "spinal_cord", "parotid", "mandible", "tmj", "middle_ear",
    "inner_ear", "optic_nerve", "eye", "lens", "optic_chiasm", "pituitary",
)
"""Label painting order (later wins where two organ shapes overlap)."""

LABEL = {"brain_stem": 1, "eye": (2, 3), "lens": (4, 5), "optic_nerve": (6, 7), "optic_chiasm": 8,
         "temporal_lobe": (9, 10), "pituitary": 11, "parotid": (12, 13), "inner_ear": (14, 15),
         "middle_ear": (16, 17), "tmj": (18, 19), "spinal_cord": 20, "mandible": (21, 22)}


@dataclass
class Layer:
    """One painting step: set ``value`` inside ``shapes``.

    Attributes:
        shapes: Shapes painted with the same value (their union).
        value: Tissue id (tissue layers) or organ label (organ layers).
        allowed: Organ layers only: tissue ids on which the label may be set (None: any).
        world: The shapes are in the scanner frame (couch), not deformed with the patient.
        head: Bone attached to the skull (mandible, teeth): moves with the head, not bent with the
            neck by the flexion.
    """

    shapes: list[Shape]
    value: int
    allowed: tuple[int, ...] | None = None
    world: bool = False
    head: bool = False


@dataclass(frozen=True)
class Variation:
    """Per-case anatomical variation (drawn by :func:`sample_variation`).

    Attributes:
        scale: Global head scale ``s`` (applied by the pose transform, not here).
        size: Organ key with side suffix (``"eye_l"``, ``"brain_stem"``) -> linear factor applied to
            the organ's canonical dimensions (includes the damping ``s ** (exponent - 1)``).
        shift: Same keys -> position offset (x, y, z) in mm.
        fat_mm: Subcutaneous fat thickness, mm.
        ventricles: Size factor of the ventricles and cisterns (atrophy/age).
        parotid_hu: Offset of the parotid mean CT number, HU (glandular fat content).
        aniso: Same keys -> per-axis stretch (x, y, z) of the organ about its centre (volume-neutral).
        jaw_deg: Jaw opening about the condyles, degrees.
        limits: Annotator's limits (keys of :data:`LIMITS`), mm.
    """

    scale: float
    size: Mapping[str, float]
    shift: Mapping[str, tuple[float, float, float]]
    fat_mm: float = 6.0
    ventricles: float = 1.0
    parotid_hu: float = 0.0
    aniso: Mapping[str, tuple[float, float, float]] | None = None
    jaw_deg: float = 0.0
    limits: Mapping[str, float] | None = None

    def stretch(self, key: str) -> np.ndarray | None:
        """Per-axis stretch matrix (3, 3) of ``key``, or None."""
        if not self.aniso or key not in self.aniso:
            return None
        return np.diag(self.aniso[key])

    def limit(self, name: str) -> float:
        """Annotator's limit ``name`` (mm; 0 or the range's middle when none was drawn)."""
        if self.limits and name in self.limits:
            return float(self.limits[name])
        return 0.0 if name != "cord_bottom" else -1000.0

    def f(self, key: str) -> float:
        """Linear size factor of ``key`` (1.0 if the key has none)."""
        return float(self.size.get(key, 1.0))

    def at(self, key: str, point: Sequence[float]) -> np.ndarray:
        """``point`` (x, y, z) moved by the offset of ``key``."""
        return np.asarray(point, dtype=np.float64) + np.asarray(self.shift.get(key, (0.0, 0.0, 0.0)))


def _keys() -> list[str]:
    keys = []
    for name in ORGAN_JITTER:
        paired = isinstance(LABEL[name], tuple)
        keys += [f"{name}_l", f"{name}_r"] if paired else [name]
    return keys


def sample_variation(rng: np.random.Generator, scale: float = 1.0) -> Variation:
    """Draw a :class:`Variation` (fixed draw order, so equal generators give equal variations).

    Args:
        rng: Random generator of the case.
        scale: Global head scale ``s`` of the case (0.9..1.1).
    """
    damp = scale ** (ORGAN_SIZE_EXPONENT - 1.0)
    size, shift, aniso = {}, {}, {}
    for key in _keys():
        organ = key.removesuffix("_l").removesuffix("_r")
        sd = ORGAN_JITTER[organ]
        size[key] = damp * float(np.exp(np.clip(rng.normal(0.0, sd), -2 * sd, 2 * sd)))
        sd_mm = SHIFT_MM[organ]
        offset = np.clip(rng.normal(0.0, 1.0, 3), -2.0, 2.0) * sd_mm
        shift[key] = tuple(float(v) for v in offset)
        log = np.clip(rng.normal(0.0, 1.0, 3), -2.0, 2.0) * ANISO_SD[organ]
        aniso[key] = tuple(float(v) for v in np.exp(log - log.mean()))
    fat, ventricles = float(rng.uniform(4.0, 9.0)), float(rng.uniform(0.8, 1.3))
    parotid = float(rng.uniform(-20, 20))
    jaw = float(rng.uniform(*JAW_DEG))
    limits = {name: float(rng.uniform(*bounds)) for name, bounds in LIMITS.items()}
    return Variation(scale=scale, size=size, shift=shift, fat_mm=fat, ventricles=ventricles,
                     parotid_hu=parotid, aniso=aniso, jaw_deg=jaw, limits=limits)


def side_point(side: int, x: float, y: float, z: float) -> np.ndarray:
    """The point (x, y, z) of the left-side definition on ``side`` (+1 left, -1 right)."""
    return np.array([side * x, y, z], dtype=np.float64)


def _mirror(rot: np.ndarray, side: int) -> np.ndarray:
    """Local-axis matrix (rows) of a left-side ellipsoid, mirrored to ``side``."""
    return rot @ np.diag([float(side), 1.0, 1.0])


def _t(name: str) -> int:
    return TISSUE_ID[name]


BRAIN = (_t("brain_grey"), _t("brain_white"))
GLAND = (_t("parotid"), _t("fat"), _t("muscle"), _t("soft"), _t("blood"))
"""Tissues a parotid contour may cover: the gland, and what lies next to it where the annotator strays."""


def jaw_rotation(v: Variation) -> np.ndarray:
    """Rotation (3, 3) of the mandible and lower teeth about the condyle axis (x), opening the mouth."""
    return rotation(rx_deg=v.jaw_deg)


def _z_between(lo: float, hi: float):
    """Keep-condition ``lo < z <= hi`` (mm)."""
    return lambda x, y, z: (z > np.float32(lo)) & (z <= np.float32(hi))


def organ_layers(v: Variation) -> tuple[list[Layer], list[Layer]]:
    """Tissue layers painted by the organs, and the organ label layers in priority order.

    Returns:
        ``(tissue_layers, label_layers)``: tissue layers in painting order (they go after the
        context painted by :mod:`~sepnet_core.data.phantom.context`) and label layers in
        :data:`ORGAN_PRIORITY` order.
    """
    tissue: list[Layer] = []
    labels: dict[str, list[Layer]] = {name: [] for name in ORGAN_PRIORITY}

    # --- brain stem (midbrain, pons, medulla) ending flat at the foramen magnum, z = -30 -------------
    stem_pts, stem_rad = stem_line(v)
    centre = v.at("brain_stem", (0, 17, 10))
    stretch = v.stretch("brain_stem")
    stem_kw = {"hints": (1, 0, 0), "caps": ("round", "flat"), "step_mm": 3.0}
    stem = warp(tube(stem_pts, stem_rad, **stem_kw), centre, stretch)
    tissue.append(Layer(stem, _t("brain_white")))

    # --- spinal cord, from the foramen magnum down (the field of view cuts it) ------------------
    f = v.f("spinal_cord")
    cord_pts = [stem_pts[-1]] + [v.at("spinal_cord", p) for p in CORD_LINE[1:]]
    cord_rad = np.array(CORD_RADII) * f
    cord_kw = {"hints": (1, 0, 0), "caps": ("flat", "round"), "step_mm": 6.0}
    cord = tube(cord_pts, cord_rad, **cord_kw)
    tissue.append(Layer(cord, _t("nerve")))
    # The annotator decides where the brain stem ends and the cord begins, and where each stops.
    border = stem_pts[-1][2] + v.limit("stem_cord")
    top = stem_pts[0][2] + stem_rad[0].min() + v.limit("stem_top")
    for key, lo, hi in (("brain_stem", border, top), ("spinal_cord", v.limit("cord_bottom"), border)):
        keep = [_z_between(lo, hi)]
        shapes = (warp(tube(stem_pts, stem_rad, keep=keep, **stem_kw), centre, stretch)
                  + tube(cord_pts, cord_rad, keep=keep, **cord_kw))
        labels[key].append(Layer(shapes, LABEL[key], allowed=BRAIN + (_t("nerve"), _t("csf"))))

    # --- chiasm and pituitary (midline) --------------------------------------------------------
    f = v.f("optic_chiasm")
    c = v.at("optic_chiasm", (0, -13, 26))
    chiasm = warp([Ellipsoid(c, np.array([8.5, 5.0, 2.8]) * f, rot=rotation(rx_deg=-15).T)], c,
                  v.stretch("optic_chiasm"))
    cut = v.limit("chiasm_z")
    chiasm_label = warp([Ellipsoid(c, np.array([8.5, 5.0, 2.8]) * f, rot=rotation(rx_deg=-15).T,
                                   keep=[_z_between(c[2] - 3.0 * f + cut, c[2] + 3.0 * f - cut)])],
                        c, v.stretch("optic_chiasm"))
    f = v.f("pituitary")
    c = v.at("pituitary", (0, -14, 12.5))
    pituitary = warp([Ellipsoid(c, np.array([6.5, 5.0, 4.5]) * f)], c, v.stretch("pituitary"))
    tissue += [Layer(chiasm, _t("nerve")), Layer(pituitary, _t("pituitary"))]
    labels["optic_chiasm"].append(Layer(chiasm_label, LABEL["optic_chiasm"]))
    labels["pituitary"].append(Layer(pituitary, LABEL["pituitary"]))

    for side, suffix, index in ((1, "_l", 0), (-1, "_r", 1)):
        _paired_organs(v, side, suffix, index, tissue, labels)

    order = [layer for name in ORGAN_PRIORITY for layer in labels[name]]
    return tissue, order


CORD_LINE = [(0, 24, -30), (0, 25, -50), (0, 24, -80), (0, 23, -110), (0, 25, -140), (0, 29, -170),
             (0, 34, -200), (0, 40, -240), (0, 46, -300), (0, 50, -360), (0, 52, -440)]
"""Centre line of the spinal cord and vertebral canal (x, y, z), mm; slight cervical lordosis."""

CORD_RADII = [(6.0, 4.6), (5.6, 4.2), (5.7, 4.3), (6.0, 4.4), (5.8, 4.3), (5.0, 3.9), (4.3, 3.4),
              (4.1, 3.2), (4.1, 3.2), (4.1, 3.2), (4.1, 3.2)]
"""Spinal cord radii (transverse, antero-posterior) at the :data:`CORD_LINE` points, mm."""


def stem_line(v: Variation) -> tuple[list[np.ndarray], np.ndarray]:
    """Centre line points (x, y, z) and radii (transverse, antero-posterior) of the brain stem, mm."""
    f = v.f("brain_stem")
    pts = [(0, 10, 46), (0, 12, 32), (0, 15, 16), (0, 19, 2), (0, 22, -14), (0, 24, -30)]
    rad = np.array([(11.5, 8.7), (12.8, 10), (14.6, 11.9), (11, 9.2), (7.8, 6.9), (6.3, 4.8)]) * f
    return [v.at("brain_stem", q) for q in pts], rad


def _paired_organs(v: Variation, side: int, suffix: str, index: int,
                   tissue: list[Layer], labels: dict[str, list[Layer]]) -> None:
    """Eyes, lenses, optic nerves, temporal lobes, parotids, ears, TMJs and mandible halves."""
    p = side_point

    # Eye, lens, optic nerve -------------------------------------------------------------------
    key = "eye" + suffix
    centre = v.at(key, p(side, 31.5, -76.0, 17.0))
    f = v.f(key)
    stretch = v.stretch(key)
    eye = warp([Ellipsoid(centre, np.array([12.4, 12.2, 12.1]) * f)], centre, stretch)
    vitreous = warp([Ellipsoid(centre, np.array([11.0, 10.8, 10.7]) * f)], centre, stretch)
    f_lens = v.f("lens" + suffix)
    lens_c = centre + np.array([0.0, -6.7 * f, 0.0])
    lens = warp([Ellipsoid(lens_c, np.array([5.0, 2.6, 5.0]) * f_lens)], lens_c,
                v.stretch("lens" + suffix))
    f_nerve = v.f("optic_nerve" + suffix)
    back = centre + np.array([-side * 2.0, 11.0 * f, 0.0])
    nerve_pts = [back, p(side, 26, -52, 16.5), p(side, 20, -40, 18), p(side, 14, -30, 21),
                 p(side, 9, -21, 24), p(side, 4.5, -15, 26)]
    nerve_pts = [back] + [v.at("optic_nerve" + suffix, q) for q in nerve_pts[1:]]
    nerve = tube(nerve_pts, np.full((6, 2), 2.0 * f_nerve), hints=(0, 0, 1), step_mm=3.0)
    end = np.float32(-15.0 + v.limit("nerve_back"))
    nerve_label = tube(nerve_pts, np.full((6, 2), 2.0 * f_nerve), hints=(0, 0, 1), step_mm=3.0,
                       keep=[lambda x, y, z: y < end])
    tissue += [Layer(nerve, _t("nerve")), Layer(eye, _t("sclera")), Layer(vitreous, _t("vitreous")),
               Layer(lens, _t("lens"))]
    labels["optic_nerve"].append(Layer(nerve_label, LABEL["optic_nerve"][index]))
    labels["eye"].append(Layer(eye, LABEL["eye"][index]))
    labels["lens"].append(Layer(lens, LABEL["lens"][index]))

    # Temporal lobe: a tapered ellipsoid in the middle cranial fossa plus the medial temporal lobe
    # (uncus, hippocampus) reaching to the ambient cistern beside the brain stem; bounded above by the
    # Sylvian fissure; labelled on brain tissue only (the temporal horn, CSF, stays out).
    key = "temporal_lobe" + suffix
    f = v.f(key)
    below_fissure = lambda x, y, z: (z < sylvian_z(y)) & (z > tentorium_z(y))  # noqa: E731
    centre = v.at(key, p(side, 30, -4, 15))
    lobe_main = Ellipsoid(v.at(key, p(side, 45, -2, 23)), np.array([17.5, 40.0, 22.0]) * f,
                          rot=_mirror(rotation(rz_deg=-12).T, side), power=2.2, keep=[below_fissure])
    lobe_pole = Ellipsoid(v.at(key, p(side, 38, -32, 14)), np.array([12.0, 15.0, 13.0]) * f,
                          keep=[below_fissure])
    medial = Ellipsoid(v.at(key, p(side, 22.5, 0, 9)), np.array([9.5, 21.0, 9.0]) * f,
                       rot=_mirror(rotation(rz_deg=-18).T, side), keep=[below_fissure])
    labels["temporal_lobe"].append(Layer(warp([lobe_main, lobe_pole, medial], centre, v.stretch(key)),
                                         LABEL["temporal_lobe"][index], allowed=BRAIN))

    # Parotid: superficial lobe over the masseter and ramus, deep lobe behind the ramus ---------
    key = "parotid" + suffix
    f = v.f(key)
    centre = v.at(key, p(side, 48, 3, -30))
    superficial = Ellipsoid(v.at(key, p(side, 53, -1, -28)), np.array([9.5, 20.0, 28.0]) * f,
                            rot=_mirror(rotation(rz_deg=10).T, side))
    deep = Ellipsoid(v.at(key, p(side, 42, 8, -31)), np.array([11.0, 11.0, 22.0]) * f,
                     rot=_mirror(rotation(rz_deg=-25).T, side))
    gland = warp([superficial, deep], centre, v.stretch(key))
    tissue.append(Layer(gland, _t("parotid")))
    labels["parotid"].append(Layer(gland, LABEL["parotid"][index], allowed=GLAND))

    # Middle ear (tympanic cavity + antrum, air with ossicles; 4-6 mm wide) and inner ear ---------
    key = "middle_ear" + suffix
    f = v.f(key)
    centre = v.at(key, p(side, 42, 4, -2))
    stretch = v.stretch(key)
    cavity = warp([Ellipsoid(v.at(key, p(side, 41, 1, -4)), np.array([2.3, 8.5, 7.5]) * f),
                   Ellipsoid(v.at(key, p(side, 43, 9, 0)), np.array([3.0, 6.5, 5.6]) * f)], centre, stretch)
    ossicles = warp([Ellipsoid(v.at(key, p(side, 41, 1, -2)), np.array([1.0, 2.5, 3.0]) * f)], centre,
                    stretch)
    key = "inner_ear" + suffix
    f = v.f(key)
    centre = v.at(key, p(side, 33, 2, 0))
    labyrinth = warp([Ellipsoid(v.at(key, p(side, 31, -4, -2)), np.array([4.0, 3.65, 2.9]) * f),
                      Ellipsoid(v.at(key, p(side, 34, 3, -1)), np.array([2.9, 3.35, 2.9]) * f),
                      Ellipsoid(v.at(key, p(side, 34, 8.5, 3)), np.array([2.9, 4.3, 3.85]) * f)],
                     centre, v.stretch(key))
    tissue += [Layer(cavity, _t("air")), Layer(ossicles, _t("ossicle")), Layer(labyrinth, _t("labyrinth"))]
    labels["middle_ear"].append(Layer(cavity, LABEL["middle_ear"][index]))
    labels["inner_ear"].append(Layer(labyrinth, LABEL["inner_ear"][index]))

    # Mandible half (condyle neck to the midline, split at x = 0), coronoid, TMJ ---------------
    key = "mandible" + suffix
    f = v.f(key)
    condyle = v.at("tmj" + suffix, p(side, *CONDYLE))
    jaw = jaw_rotation(v)
    centre = v.at(key, (0.0, -35.0, -50.0))  # stretched about the midline, so the halves stay joined
    rad = np.array(MANDIBLE_RADII) * f
    hint = [(0, 1, 0)] * 4 + [(0, 0.7, 0.7)] + [(0, 0, 1)] * 6
    pts = [v.at(key, p(side, *q)) for q in MANDIBLE_LINE]
    pts[0] = condyle + np.array([0.0, 0.0, -4.5])  # the neck stays on the condyle
    half = (lambda x, y, z: x >= 0) if side > 0 else (lambda x, y, z: x <= 0)
    body = tube(pts, rad, hints=hint, power=3.0, step_mm=4.0, keep=[half])
    marrow = tube(pts, np.maximum(rad - 2.2, 1.0), hints=hint, power=3.0, step_mm=4.0, keep=[half])
    coronoid = tube([v.at(key, p(side, *q)) for q in ((46, -36, -42), (45, -34, -26), (44, -31, -13))],
                    np.array([(6, 2.5), (4, 2.2), (3, 2)]) * f, hints=(0, 1, 0), step_mm=4.0)
    bone = warp(warp(body + coronoid, centre, v.stretch(key)), condyle, jaw)
    marrow = warp(warp(marrow, centre, v.stretch(key)), condyle, jaw)
    key = "tmj" + suffix
    f = v.f(key)
    tmj_rot = _mirror(rotation(rz_deg=15).T, side)
    stretch = v.stretch(key)
    joint = warp([Ellipsoid(condyle + (0, 0, 0.5), np.array([9.7, 5.35, 5.35]) * f, rot=tmj_rot)], condyle,
                 stretch)
    head = warp([Ellipsoid(condyle, np.array([8.5, 4.3, 4.5]) * f, rot=tmj_rot)], condyle, stretch)
    head_marrow = warp([Ellipsoid(condyle, np.array([6.5, 2.5, 2.8]) * f, rot=tmj_rot)], condyle, stretch)
    tissue += [Layer(bone, _t("cortical"), head=True), Layer(marrow, _t("cancellous"), head=True),
               Layer(joint, _t("cartilage")), Layer(head, _t("cortical")),
               Layer(head_marrow, _t("cancellous"))]
    labels["mandible"].append(Layer(bone, LABEL["mandible"][index],
                                    allowed=(_t("cortical"), _t("cancellous")), head=True))
    labels["tmj"].append(Layer(joint, LABEL["tmj"][index]))

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
positions (left/right asymmetry). All nominal values are listed in ``docs/phantom.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sepnet_core.data.phantom.shapes import Ellipsoid, Shape, rotation, tube
from sepnet_core.data.phantom.tissues import TISSUE_ID

__all__ = [
    "Layer", "Variation", "ORGAN_SIZE_EXPONENT", "ORGAN_JITTER", "SHIFT_MM", "ORGAN_PRIORITY",
    "sample_variation", "organ_layers", "side_point", "stem_line", "CORD_LINE", "CORD_RADII",
]

ORGAN_SIZE_EXPONENT = 0.3
"""Organ dimensions follow the global head scale ``s`` as ``s ** 0.3`` (positions follow ``s``)."""

ORGAN_JITTER: dict[str, float] = {
    "brain_stem": 0.03, "eye": 0.012, "lens": 0.025, "optic_nerve": 0.04, "optic_chiasm": 0.05,
    "temporal_lobe": 0.04, "pituitary": 0.05, "parotid": 0.045, "inner_ear": 0.04, "middle_ear": 0.05,
    "tmj": 0.04, "spinal_cord": 0.03, "mandible": 0.025,
}
"""Standard deviation of the log linear size factor per organ (clipped at 2 SD); drawn per side."""

SHIFT_MM = 1.0
"""Standard deviation (mm, per axis, clipped at 2 SD) of the per-organ, per-side position offset."""

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
    """

    shapes: list[Shape]
    value: int
    allowed: tuple[int, ...] | None = None
    world: bool = False


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
    """

    scale: float
    size: Mapping[str, float]
    shift: Mapping[str, tuple[float, float, float]]
    fat_mm: float = 6.0
    ventricles: float = 1.0
    parotid_hu: float = 0.0

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
    size, shift = {}, {}
    for key in _keys():
        sd = ORGAN_JITTER[key.removesuffix("_l").removesuffix("_r")]
        size[key] = damp * float(np.exp(np.clip(rng.normal(0.0, sd), -2 * sd, 2 * sd)))
        offset = np.clip(rng.normal(0.0, SHIFT_MM, 3), -2 * SHIFT_MM, 2 * SHIFT_MM)
        shift[key] = tuple(float(v) for v in offset)
    return Variation(
        scale=scale, size=size, shift=shift, fat_mm=float(rng.uniform(4.0, 9.0)),
        ventricles=float(rng.uniform(0.8, 1.3)), parotid_hu=float(rng.uniform(-20.0, 20.0)),
    )


def side_point(side: int, x: float, y: float, z: float) -> np.ndarray:
    """The point (x, y, z) of the left-side definition on ``side`` (+1 left, -1 right)."""
    return np.array([side * x, y, z], dtype=np.float64)


def _mirror(rot: np.ndarray, side: int) -> np.ndarray:
    """Local-axis matrix (rows) of a left-side ellipsoid, mirrored to ``side``."""
    return rot @ np.diag([float(side), 1.0, 1.0])


def _t(name: str) -> int:
    return TISSUE_ID[name]


BRAIN = (_t("brain_grey"), _t("brain_white"))


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
    stem = tube(stem_pts, stem_rad, hints=(1, 0, 0), caps=("round", "flat"), step_mm=3.0)
    tissue.append(Layer(stem, _t("brain_white")))
    labels["brain_stem"].append(Layer(stem, LABEL["brain_stem"], allowed=BRAIN))

    # --- spinal cord, from the foramen magnum down (the field of view cuts it) ------------------
    f = v.f("spinal_cord")
    cord_pts = [stem_pts[-1]] + [np.array(p, float) for p in CORD_LINE[1:]]
    cord_rad = np.array(CORD_RADII) * f
    cord = tube(cord_pts, cord_rad, hints=(1, 0, 0), caps=("flat", "round"), step_mm=6.0)
    tissue.append(Layer(cord, _t("nerve")))
    labels["spinal_cord"].append(Layer(cord, LABEL["spinal_cord"], allowed=(_t("nerve"),)))

    # --- chiasm and pituitary (midline) --------------------------------------------------------
    f = v.f("optic_chiasm")
    chiasm = Ellipsoid(v.at("optic_chiasm", (0, -13, 26)), np.array([8.5, 5.0, 2.8]) * f,
                       rot=rotation(rx_deg=-15).T)
    f = v.f("pituitary")
    pituitary = Ellipsoid(v.at("pituitary", (0, -14, 12.5)), np.array([6.5, 5.0, 4.5]) * f)
    tissue += [Layer([chiasm], _t("nerve")), Layer([pituitary], _t("pituitary"))]
    labels["optic_chiasm"].append(Layer([chiasm], LABEL["optic_chiasm"]))
    labels["pituitary"].append(Layer([pituitary], LABEL["pituitary"]))

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
    eye = Ellipsoid(centre, np.array([12.2, 12.0, 11.9]) * f)
    vitreous = Ellipsoid(centre, np.array([11.0, 10.8, 10.7]) * f)
    f_lens = v.f("lens" + suffix)
    lens = Ellipsoid(centre + np.array([0.0, -6.7 * f, 0.0]), np.array([4.95, 2.35, 4.95]) * f_lens)
    f_nerve = v.f("optic_nerve" + suffix)
    back = centre + np.array([-side * 2.0, 11.0 * f, 0.0])
    nerve_pts = [back, p(side, 26, -52, 16.5), p(side, 20, -40, 18), p(side, 14, -30, 21),
                 p(side, 9, -21, 24), p(side, 4.5, -15, 26)]
    nerve_pts = [v.at("optic_nerve" + suffix, q) for q in nerve_pts[1:]]
    nerve = tube([back] + nerve_pts, np.full((6, 2), 1.9 * f_nerve), hints=(0, 0, 1), step_mm=3.0)
    tissue += [Layer(nerve, _t("nerve")), Layer([eye], _t("sclera")), Layer([vitreous], _t("vitreous")),
               Layer([lens], _t("lens"))]
    labels["optic_nerve"].append(Layer(nerve, LABEL["optic_nerve"][index], allowed=(_t("nerve"),)))
    labels["eye"].append(Layer([eye], LABEL["eye"][index]))
    labels["lens"].append(Layer([lens], LABEL["lens"][index]))

    # Temporal lobe: a tapered ellipsoid in the middle cranial fossa, labelled on brain tissue only
    key = "temporal_lobe" + suffix
    f = v.f(key)
    lobe_main = Ellipsoid(v.at(key, p(side, 45, -2, 23)), np.array([17.5, 40.0, 22.0]) * f,
                          rot=_mirror(rotation(rz_deg=-12).T, side), power=2.2)
    lobe_pole = Ellipsoid(v.at(key, p(side, 38, -32, 14)), np.array([12.0, 15.0, 13.0]) * f)
    labels["temporal_lobe"].append(Layer([lobe_main, lobe_pole], LABEL["temporal_lobe"][index],
                                         allowed=BRAIN))

    # Parotid: superficial lobe over the masseter and ramus, deep lobe behind the ramus ---------
    key = "parotid" + suffix
    f = v.f(key)
    superficial = Ellipsoid(v.at(key, p(side, 53, -1, -28)), np.array([9.5, 20.0, 28.0]) * f,
                            rot=_mirror(rotation(rz_deg=10).T, side))
    deep = Ellipsoid(v.at(key, p(side, 42, 8, -31)), np.array([11.0, 11.0, 22.0]) * f,
                     rot=_mirror(rotation(rz_deg=-25).T, side))
    tissue.append(Layer([superficial, deep], _t("parotid")))
    labels["parotid"].append(Layer([superficial, deep], LABEL["parotid"][index], allowed=(_t("parotid"),)))

    # Middle ear (tympanic cavity + antrum, air with ossicles) and inner ear (labyrinth) -------
    key = "middle_ear" + suffix
    f = v.f(key)
    tympanic = Ellipsoid(v.at(key, p(side, 41, 1, -4)), np.array([4.1, 7.8, 6.8]) * f)
    antrum = Ellipsoid(v.at(key, p(side, 43, 9, 0)), np.array([4.7, 6.2, 5.2]) * f)
    ossicles = Ellipsoid(v.at(key, p(side, 42, 1, -2)), np.array([1.5, 2.5, 3.0]) * f)
    key = "inner_ear" + suffix
    f = v.f(key)
    cochlea = Ellipsoid(v.at(key, p(side, 31, -4, -2)), np.array([4.0, 3.65, 2.9]) * f)
    vestibule = Ellipsoid(v.at(key, p(side, 34, 3, -1)), np.array([2.9, 3.35, 2.9]) * f)
    canals = Ellipsoid(v.at(key, p(side, 34, 8.5, 3)), np.array([2.9, 4.3, 3.85]) * f)
    tissue += [Layer([tympanic, antrum], _t("air")), Layer([ossicles], _t("ossicle")),
               Layer([cochlea, vestibule, canals], _t("labyrinth"))]
    labels["middle_ear"].append(Layer([tympanic, antrum], LABEL["middle_ear"][index]))
    labels["inner_ear"].append(Layer([cochlea, vestibule, canals], LABEL["inner_ear"][index]))

    # Mandible half (condyle neck to the midline, split at x = 0), coronoid, TMJ ---------------
    key = "mandible" + suffix
    f = v.f(key)
    line = [(50, -13, -11), (49, -12, -22), (48, -9, -36), (47, -5, -52), (44, -2, -66), (41, -14, -72),
            (36, -32, -74), (27, -50, -75), (15, -65, -76), (0, -73, -77), (-8, -71.5, -77)]
    rad = np.array([(5, 4), (8, 4.5), (13, 4.5), (14, 5), (10, 6), (13, 6), (13.5, 6.2), (13.5, 6.2),
                    (14.5, 6.5), (15.5, 7), (15.5, 7)]) * np.array([0.96, 0.88]) * f
    hint = [(0, 1, 0)] * 4 + [(0, 0.7, 0.7)] + [(0, 0, 1)] * 6
    pts = [v.at(key, p(side, *q)) for q in line]
    half = (lambda x, y, z: x >= 0) if side > 0 else (lambda x, y, z: x <= 0)
    body = tube(pts, rad, hints=hint, power=3.0, step_mm=4.0, keep=[half])
    marrow = tube(pts, np.maximum(rad - 2.2, 1.0), hints=hint, power=3.0, step_mm=4.0, keep=[half])
    coronoid = tube([v.at(key, p(side, *q)) for q in ((46, -16, -36), (45, -24, -20), (44, -28, -8))],
                    np.array([(6, 2.5), (4, 2.2), (3, 2)]) * f, hints=(0, 1, 0), step_mm=4.0)
    key = "tmj" + suffix
    f = v.f(key)
    tmj_rot = _mirror(rotation(rz_deg=15).T, side)
    joint = Ellipsoid(v.at(key, p(side, 50, -13, -6)), np.array([9.7, 5.35, 5.35]) * f, rot=tmj_rot)
    condyle = Ellipsoid(v.at(key, p(side, 50, -13, -6.5)), np.array([8.5, 4.3, 4.5]) * f, rot=tmj_rot)
    condyle_marrow = Ellipsoid(v.at(key, p(side, 50, -13, -6.5)), np.array([6.5, 2.5, 2.8]) * f, rot=tmj_rot)
    tissue += [Layer(body + coronoid, _t("cortical")), Layer(marrow, _t("cancellous")),
               Layer([joint], _t("cartilage")), Layer([condyle], _t("cortical")),
               Layer([condyle_marrow], _t("cancellous"))]
    labels["mandible"].append(Layer(body + coronoid, LABEL["mandible"][index],
                                    allowed=(_t("cortical"), _t("cancellous"))))
    labels["tmj"].append(Layer([joint], LABEL["tmj"][index]))

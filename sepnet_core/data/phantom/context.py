"""Everything around the organs: body, skull, brain, face, neck, spine, shoulders and the couch.

Same canonical frame as :mod:`~sepnet_core.data.phantom.anatomy` (mm; x left, y posterior,
z superior; origin between the ear canals on the Frankfort plane). The context is what makes the
phantom a segmentation task rather than a colouring exercise: the brain stem and temporal lobes lie
in brain tissue of the same CT number, the parotids among fat and muscle, the bony organs inside a
skull with the same bone. Layers are returned in painting order; later layers overwrite earlier ones.
"""

from __future__ import annotations

import numpy as np

from sepnet_core.data.phantom.anatomy import (
    CONDYLE,
    CORD_LINE,
    Layer,
    Variation,
    jaw_rotation,
    side_point,
    stem_line,
    sylvian_z,
)
from sepnet_core.data.phantom.shapes import Ellipsoid, Loft, Region, Shape, rotation, tube, warp
from sepnet_core.data.phantom.tissues import TISSUE_ID

__all__ = ["SKULL_CENTRE", "SKULL_RADII", "BODY_ROWS", "cranial_floor", "context_layers", "couch_layers",
           "body_back", "VERTEX_Z"]

SKULL_CENTRE = (0.0, -4.0, 22.0)
"""Centre of the cranial vault ellipsoid (x, y, z), mm."""
SKULL_RADII = (70.0, 93.0, 100.0)
"""Outer semi-axes of the cranial vault (x, y, z), mm; the vault is 6.5 mm thick, the scalp 6 mm."""
SKULL_MM, SCALP_MM, SKIN_MM = 6.5, 6.0, 2.0
VERTEX_Z = SKULL_CENTRE[2] + SKULL_RADII[2] + SCALP_MM
"""Height of the top of the head (skin), mm."""

BODY_ROWS = (
    # z,    cy,   ax,   ay_front, ay_back, power
    (-460, 10.0, 200.0, 118.0, 100.0, 2.6),
    (-260, 10.0, 200.0, 112.0, 98.0, 2.8),
    (-225, 10.0, 195.0, 100.0, 96.0, 3.0),
    (-205, 10.0, 150.0, 84.0, 90.0, 2.6),
    (-185, 10.0, 78.0, 64.0, 80.0, 2.4),
    (-150, 10.0, 62.0, 58.0, 72.0, 2.2),
    (-115, 8.0, 60.0, 58.0, 70.0, 2.2),
    (-100, 0.0, 62.0, 82.0, 72.0, 2.2),
    (-92, -2.0, 64.0, 92.0, 74.0, 2.3),
    (-70, -4.0, 68.0, 95.0, 78.0, 2.4),
    (-40, -4.0, 71.0, 97.0, 84.0, 2.4),
    (-15, -4.0, 73.0, 96.0, 90.0, 2.4),
    (10, -4.0, 75.0, 92.0, 96.0, 2.3),
    (30, -4.0, 75.0, 92.0, 98.0, 2.2),
)
"""Body outline below the cranium: rows (z, cy, ax, ay_front, ay_back, power) of :class:`Loft`, mm."""


def _sig(v: np.ndarray, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v / np.float32(width)))


def cranial_floor(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Height (z, mm) of the floor of the cranial cavity above the point (x, y).

    Anterior fossa: domed orbital roofs (+34 mm over each orbit at y = -40, rising 0.1 mm per mm
    forwards), +25 mm at the cribriform plate. Middle fossa: a bowl, deepest (+1 mm) at |x| = 44,
    y = -10, rising 14 mm at 22 mm (x) and 28 mm (y) from there. Sella +8 mm, dropping along the
    clivus (its back surface at y = -3 + (14 - z) / 2.1) into the posterior fossa: -30 mm at the
    foramen magnum, rising laterally and, behind
    y = 40 mm, by 0.6 mm per mm towards the occiput. The anterior/middle boundary (sphenoid wing) and
    the middle/posterior boundary (petrous ridge) run obliquely; transitions are logistic over 3 mm.
    """
    ax = np.abs(x)
    anterior = 24.0 + 10.0 * np.exp(-(((ax - 30.0) / 15.0) ** 2)) - 0.1 * (y + 40.0)
    middle = np.minimum(1.0 + 14.0 * ((ax - 44.0) / 22.0) ** 2 + 14.0 * ((y + 10.0) / 28.0) ** 2, 33.0)
    posterior = -30.0 + 12.0 * (ax / 45.0) ** 2 + 0.6 * np.maximum(y - 40.0, 0.0)
    central = np.maximum(np.clip(14.0 - 2.1 * (y + 3.0), -30.0, 8.0), posterior)
    beyond = np.maximum(ax - 15.0, 0.0)
    y_front, y_ridge = -30.0 - 0.8 * beyond, -5.0 + 0.62 * beyond
    lateral = middle + (posterior - middle) * _sig(y - y_ridge, 3.0)
    lat = _sig(ax - 17.0, 3.0)
    inner = (1.0 - lat) * central + lat * lateral
    return (anterior + (inner - anterior) * _sig(y - y_front, 3.0)).astype(np.float32)


BASE_MM = (2.5, 4.0, 7.0)
"""Thickness of the skull base under the anterior, middle and posterior cranial fossae, mm."""


def base_thickness(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Thickness (mm) of the skull base below the cranial floor at (x, y) (see :data:`BASE_MM`)."""
    beyond = np.maximum(np.abs(x) - 15.0, 0.0)
    front, ridge = _sig(y + 30.0 + 0.8 * beyond, 3.0), _sig(y + 5.0 - 0.62 * beyond, 3.0)
    a, m, p = BASE_MM
    return (a + (m - a) * front + (p - m) * ridge).astype(np.float32)


def _above_floor(offset: float, base_fraction: float = 0.0):
    """Keep-condition ``z > floor + offset - base_fraction * base thickness``."""
    if base_fraction == 0.0:
        return lambda x, y, z: z > cranial_floor(x, y) + np.float32(offset)
    frac = np.float32(base_fraction)
    return lambda x, y, z: z > cranial_floor(x, y) - frac * base_thickness(x, y)


def _t(name: str) -> int:
    return TISSUE_ID[name]


def _skull(inset: float, offset: float = 0.0, base_fraction: float = 0.0) -> Ellipsoid:
    radii = np.array(SKULL_RADII) - inset
    return Ellipsoid(SKULL_CENTRE, radii, keep=[_above_floor(offset, base_fraction)])


def _head(inset: float) -> Ellipsoid:
    """The scalp ellipsoid (skin surface) shrunk by ``inset`` mm, above z = 10."""
    radii = np.array(SKULL_RADII) + SCALP_MM - inset
    return Ellipsoid(SKULL_CENTRE, radii, keep=[lambda x, y, z: z > 10.0])


def body_back(z: np.ndarray) -> np.ndarray:
    """Posterior skin surface on the midline (y, mm) at heights ``z`` (mm); -inf outside the body."""
    z = np.asarray(z, dtype=np.float64)
    rows = np.asarray(BODY_ROWS)
    loft = np.where((z >= rows[0, 0]) & (z <= rows[-1, 0]),
                    np.interp(z, rows[:, 0], rows[:, 1] + rows[:, 4]), -np.inf)
    rz = SKULL_RADII[2] + SCALP_MM
    t = np.clip(1.0 - ((z - SKULL_CENTRE[2]) / rz) ** 2, 0.0, None)
    head = np.where((z > 10.0) & (t > 0), SKULL_CENTRE[1] + (SKULL_RADII[1] + SCALP_MM) * np.sqrt(t), -np.inf)
    return np.maximum(loft, head)


def _body(inset: float) -> list[Shape]:
    return [_head(inset), Loft(BODY_ROWS, inset=inset)]


def couch_layers(y_top: float) -> list[Layer]:
    """The couch in the scanner frame: shell, foam core, shell, then air behind it.

    Args:
        y_top: World y (mm) of the couch's upper surface (the patient lies on it).
    """
    def slab(lo: float, hi: float):
        def inside(x, y, z):
            surface = np.float32(y_top) - np.float32(0.0007) * x * x
            return (y >= surface + np.float32(lo)) & (y < surface + np.float32(hi)) & (np.abs(x) <= 250)
        return Region((-250, y_top - 50, -1e4), (250, y_top + 400, 1e4), inside)
    return [Layer([slab(0, 4)], _t("couch"), world=True), Layer([slab(4, 38)], _t("foam"), world=True),
            Layer([slab(38, 42)], _t("couch"), world=True), Layer([slab(42, 400)], _t("air"), world=True)]


def _headrest() -> Region:
    zs = np.arange(-180.0, 131.0, 2.0)
    back = np.nan_to_num(body_back(zs), neginf=80.0)

    def inside(x, y, z):
        surface = np.interp(z.ravel(), zs, back).astype(np.float32).reshape(z.shape) - 3.0
        return (y >= surface + np.float32(0.012) * x * x) & (np.abs(x) <= 75)
    return Region((-75, 60, -170), (75, 200, 120), inside)


def context_layers(v: Variation) -> tuple[list[Layer], list[Layer]]:
    """Context tissue layers painted before and after the organs' own tissues.

    Returns:
        ``(before, after)`` lists of :class:`Layer` in painting order.
    """
    before: list[Layer] = []
    add = lambda shapes, name: before.append(Layer(list(shapes), _t(name)))  # noqa: E731
    fat = SKIN_MM + v.fat_mm
    add([_headrest()], "headrest")
    add(_body(0.0) + _nose() + _ears(), "skin")
    add(_body(SKIN_MM), "fat")
    add([_head(SKIN_MM + 3.0), Loft(BODY_ROWS, inset=fat)], "muscle")
    head_out = np.array(SKULL_RADII) + 3.5
    add([Ellipsoid(SKULL_CENTRE, head_out, keep=[lambda x, y, z: (np.abs(x) > 45) & (z > -10) & (z < 62)
                                                 & (y > -62) & (y < 30)])], "muscle")  # temporalis
    _neck_soft(v, add)
    _skull_and_brain(v, add)
    _face(add)
    _spine(add)
    _chest(add)
    after: list[Layer] = []
    after.append(Layer(_teeth(v), _t("tooth"), head=True))
    for side in (1, -1):
        canal = tube([side_point(side, *q) for q in ((78, 4, -5), (62, 2, -4), (47, 1, -3))],
                     [(4.0, 3.5)] * 3, hints=(0, 0, 1), step_mm=4.0)
        after.append(Layer(canal, _t("air")))
    return before, after


def _nose() -> list[Shape]:
    pts = [(0, -96, 22), (0, -104, 5), (0, -116, -14), (0, -104, -25)]
    return tube(pts, [(7, 5), (10, 7), (12, 9), (9, 6)], hints=(1, 0, 0), step_mm=4.0)


def _ears() -> list[Shape]:
    return [Ellipsoid(side_point(s, 75, 12, -2), (3.5, 15.0, 28.0), rot=rotation(rz_deg=-s * 30).T)
            for s in (1, -1)]


def _neck_soft(v: Variation, add) -> None:
    """Fat spaces, muscles, glands and vessels of the face and neck (before the bones)."""
    sym = lambda x, y, z, r, **kw: [Ellipsoid(side_point(s, x, y, z), r, **kw) for s in (1, -1)]  # noqa: E731
    add(sym(24, -16, -38, (7, 9, 18)) + sym(42, -44, -40, (7, 10, 12)) + sym(42, -22, -20, (10, 13, 10))
        + sym(33, -38, -95, (12, 16, 13)), "fat")  # parapharyngeal, buccal, infratemporal, submandibular
    vessels = {
        "carotid": ([(20, -10, -30), (21, -12, -80), (22, -14, -130), (20, -18, -180), (10, -22, -230)], 3.5),
        "jugular": ([(32, 2, -30), (30, -4, -80), (28, -10, -130), (24, -16, -180), (15, -20, -220)], 5.5),
    }
    scm = [(55, 18, -22), (50, 2, -70), (40, -20, -130), (22, -42, -185)]
    for s in (1, -1):
        for pts, r in vessels.values():
            add(tube([side_point(s, *q) for q in pts], [(r + 3, r + 3)] * len(pts), step_mm=6.0), "fat")
        add(tube([side_point(s, *q) for q in scm], [(12, 7)] * 4, hints=(1, 0.6, 0), step_mm=6.0), "fat")
    add(sym(55, -18, -40, (6, 13, 23), rot=rotation(rx_deg=15).T), "muscle")  # masseter
    for s in (1, -1):
        add(tube([side_point(s, *q) for q in scm], [(10, 5)] * 4, hints=(1, 0.6, 0), step_mm=6.0), "muscle")
        for pts, r in vessels.values():
            add(tube([side_point(s, *q) for q in pts], [(r, r)] * len(pts), step_mm=6.0), "blood")
    add(sym(33, -38, -95, (9, 13, 10)), "soft")  # submandibular glands
    add(sym(17, -28, -150, (8, 9, 20)), "thyroid")
    add([Region((-2.5, 50, -200), (2.5, 110, -30), lambda x, y, z: np.abs(x) < 1.5)], "fat")  # nuchal
    add(sym(135, 10, -290, (28, 45, 60)), "fat")  # axillae


def _skull_and_brain(v: Variation, add) -> None:
    inner = SKULL_MM
    add([_skull(0.0, base_fraction=1.0)], "cortical")
    add([_skull(2.0, base_fraction=0.7)], "cancellous")
    add([_skull(inner - 2.0, base_fraction=0.3)], "cortical")
    add([_skull(inner, 0.0)], "csf")
    add([_skull(inner + 2.5, 1.5)], "brain_grey")
    add([_skull(inner + 9.0, 7.0)], "brain_white")
    pts, rad = stem_line(v)
    add(tube(pts, rad + 3.0, hints=(1, 0, 0), caps=("round", "flat"), step_mm=4.0), "brain_white")
    k = v.ventricles
    clivus_back = lambda x, y, z: y > -3.0 - (z - 14.0) / 2.1  # noqa: E731  behind the clivus
    add(tube([(0, -3.4, 20), (0, 6.2, 0), (0, 16.6, -22)], [(11 * k, 3.0 * k)] * 3, hints=(1, 0, 0),
             keep=[clivus_back]), "csf")  # prepontine cistern
    add([Ellipsoid((0, -12, 24), (13 * k, 10 * k, 6.5 * k)),  # suprasellar cistern
         Ellipsoid((0, 33, 10), (5 * k, 3.5 * k, 8 * k)),  # fourth ventricle
         Ellipsoid((0, -8, 46), (2.5 * k, 9, 7)),  # third ventricle
         Ellipsoid((0, 45, -20), (14 * k, 12 * k, 8 * k), keep=[_above_floor(0.5)])], "csf")  # cisterna magna
    inner_skull = _skull(inner + 1.0).inside
    for s in (1, -1):
        add([Ellipsoid(side_point(s, 11, -2, 52), (6 * k, 28, 9 * k), rot=rotation(rz_deg=-s * 8).T),
             Ellipsoid(side_point(s, 30, -4, 13), (2.2 * k, 15, 2.6 * k), rot=rotation(rz_deg=-s * 15).T),
             Ellipsoid(side_point(s, 14.0, 12, 12), (1.0 * k, 14, 11), rot=rotation(rz_deg=s * 20).T)],
            "csf")  # lateral ventricles, temporal horns, ambient cisterns
    half = np.float32(0.9 + 0.8 * k)
    fissure = lambda x, y, z: np.abs(z - sylvian_z(y) - half) < half  # noqa: E731
    add([Region((-68, -48, 10), (68, 22, 60), lambda x, y, z: fissure(x, y, z) & (np.abs(x) > 26),
                keep=[inner_skull])], "csf")  # Sylvian fissures, above the temporal lobes
    for s in (1, -1):
        axis = rotation(rz_deg=-s * 32).T
        add([Ellipsoid(side_point(s, 50, 17, -14), (10, 11, 13))], "mastoid")
        add([Ellipsoid(side_point(s, 33, 2, -1), (23, 10, 8.5), rot=axis)], "petrous")
        add(tube([side_point(s, 30, 2, 0), side_point(s, 16, 4, 1)], [(2.2, 2.2)] * 2), "csf")  # IAC


def _face(add) -> None:
    """Facial skeleton, sinuses, nasal cavity, orbits and airway (in painting order)."""
    upper_arch = [(q[0], q[1], -39.0) for q in UPPER_ARCH]
    add(tube(upper_arch, [(7.5, 7.0)] * len(upper_arch), hints=(0, 0, 1), step_mm=4.0), "cortical")
    add(tube(upper_arch, [(5.5, 5.0)] * len(upper_arch), hints=(0, 0, 1), step_mm=4.0), "cancellous")
    add([Ellipsoid((0, -68, -8), (13, 27, 26), power=3.0)], "cortical")  # nasal cavity walls
    for s in (1, -1):
        add([Ellipsoid(side_point(s, 46, -64, 0), (8, 8, 12))], "cortical")  # zygoma
        add([Ellipsoid(side_point(s, 46, -64, 0), (6, 6, 10))], "cancellous")
    add([Ellipsoid((0, -20, 2), (15, 18, 12))], "cortical")  # sphenoid body
    add([Ellipsoid((0, -70, 17), (11, 20, 8))], "mastoid")  # ethmoid cells
    add([Ellipsoid((0, -25, 2), (11, 11, 8)), Ellipsoid((0, -68, -8), (11, 25, 24), power=3.0),
         Ellipsoid((0, -93, 42), (13, 4.5, 8))], "air")  # sphenoid sinus, nasal cavity, frontal sinus
    for s in (1, -1):
        add([Ellipsoid(side_point(s, 26, -64, -14), (13.5, 17.5, 15.5))], "cortical")
        add([Ellipsoid(side_point(s, 26, -64, -14), (12, 16, 14))], "air")  # maxillary sinus
        add([Ellipsoid(side_point(s, 8.5, -66, z), (3.5, 18, 3)) for z in (-20, -8, 4)], "soft")  # turbinates
        add(tube([side_point(s, *q) for q in ((60, -10, -6), (62, -35, -8), (52, -62, -4), (40, -76, 2))],
                 [(4, 3)] * 4, hints=(0, 0, 1)), "cortical")  # zygomatic arch
    add([Region((-1.5, -93, -30), (1.5, -45, 16), lambda x, y, z: np.abs(x) < 1.3)], "cartilage")  # septum
    add([Ellipsoid((0, -62, -35), (24, 28, 3.0))], "cortical")  # hard palate
    for s in (1, -1):  # orbit walls, orbital fat, recti, eyelids
        apex, rim = side_point(s, 14, -32, 20), side_point(s, 34, -88, 17)
        inside_body = Loft(BODY_ROWS, inset=3.0).inside
        rim_cut = lambda x, y, z: y > np.float32(-88.0) + np.float32(18.0) * np.clip(  # noqa: E731
            (np.abs(x) - np.float32(30.0)) / np.float32(16.0), 0.0, 1.0)  # the lateral rim lies further back
        add(tube([apex, rim], [(5.0, 5.0), (19.5, 17.5)], hints=(1, 0, 0), caps=("round", "flat"),
                 keep=[inside_body, rim_cut]), "cortical")
        add(tube([apex, rim], [(3.5, 3.5), (18, 16)], hints=(1, 0, 0), caps=("round", "flat"),
                 keep=[inside_body, rim_cut]), "orbital_fat")
        for d in ((s, 0, 0), (-s, 0, 0), (0, 0, 1), (0, 0, -1)):
            end = side_point(s, 31.5, -70, 17) + 11.5 * np.array(d, float)
            start = apex + 2.5 * np.array(d, float)
            flat = (0, 0, 1) if d[2] == 0 else (1, 0, 0)
            add(tube([start, end], [(4.0, 1.8), (4.0, 1.8)], hints=flat), "muscle")
        lid = Ellipsoid(side_point(s, 31.5, -76, 17), (14.5, 14.5, 14.5), keep=[lambda x, y, z: y < -80])
        add([lid], "skin")
    airway = [(0, -50, -12), (0, -30, -18), (0, -18, -32), (0, -14, -50), (0, -13, -70), (0, -12, -88),
              (0, -16, -102), (0, -22, -118), (0, -26, -140), (0, -26, -180), (0, -22, -230), (0, -16, -300),
              (0, -14, -460)]
    radii = [(12, 6), (13, 8), (12, 7), (12, 6), (13, 6), (12, 6), (9, 7), (8, 7), (8.5, 8), (9, 8.5),
             (9, 8.5), (9, 8.5), (9, 8.5)]
    add([Ellipsoid((0, -26, -112), (20, 16, 13), keep=[lambda x, y, z: y < -16]),
         Ellipsoid((0, -20, -130), (12, 12, 4))], "cartilage")  # thyroid and cricoid cartilage
    add([Ellipsoid((0, -24, -112), (17, 13.5, 13))], "soft")
    add(tube(airway, radii, hints=(1, 0, 0), step_mm=5.0), "air")
    oesophagus = [(0, -6, -125), (0, -4, -180), (-3, 0, -250), (-5, 2, -460)]
    add(tube(oesophagus, [(1.5, 1.0)] * 4), "air")  # collapsed oesophagus lumen
    hyoid = [(-22, -20, -95), (-14, -33, -97), (0, -38, -98), (14, -33, -97), (22, -20, -95)]
    add(tube(hyoid, [(3.2, 3.2)] * 5), "cortical")
    add([Ellipsoid((0, -55, -47.5), (13, 15, 1.2))], "air")  # air between tongue and palate


UPPER_ARCH = ((-36, -26, -44), (-30, -44, -44.5), (-20, -62, -44.5), (-9, -74, -44.5), (0, -77, -44.5),
              (9, -74, -44.5), (20, -62, -44.5), (30, -44, -44.5), (36, -26, -44))
"""Centre line of the upper dental arch (x, y, z), mm; the lower arch is 2.5 mm behind, 14 mm lower."""


def lower_arch(v: Variation | None = None) -> list[tuple[float, float, float]]:
    """Centre line of the lower dental arch (x, y, z), mm, turned with the opening jaw."""
    lower = np.array([(x, y + 2.5, -58.5) for x, y, _ in UPPER_ARCH])
    if v is None or v.jaw_deg == 0.0:
        return [tuple(q) for q in lower]
    centre = np.array([0.0, CONDYLE[1], CONDYLE[2]])
    return [tuple(q) for q in (lower - centre) @ jaw_rotation(v).T + centre]


def _teeth(v: Variation | None = None) -> list[Shape]:
    return (tube(list(UPPER_ARCH), [(6.5, 4.2)] * 9, hints=(0, 0, 1), step_mm=3.0)
            + warp(tube(lower_arch(), [(6.5, 4.2)] * 9, hints=(0, 0, 1), step_mm=3.0),
                   (0.0, CONDYLE[1], CONDYLE[2]), None if v is None else jaw_rotation(v)))


SPINE_LEVELS = (-42, -60, -78, -96, -114, -132, -150, -169, -189, -210, -232, -255, -279, -303, -328, -354,
                -380, -406, -432)
"""Heights of the vertebral bodies (C1 ring, C2 ... C7, T1 ...), mm."""


def _spine(add) -> None:
    line = np.asarray(CORD_LINE, dtype=np.float64)
    order = np.argsort(line[:, 2])
    cy = lambda z: float(np.interp(z, line[order, 2], line[order, 1]))  # noqa: E731
    canal_z = (-460, -180, -150, -70, -45, -25)
    canal_r = ((8.5, 8), (9, 8), (12.5, 8), (12, 8.5), (13.5, 11), (17, 15))
    canal_pts = [(0, cy(z), z) for z in canal_z]
    bodies, marrow, arches, processes = [], [], [], []
    for n, z in enumerate(SPINE_LEVELS):
        thoracic = n >= 7
        c = np.array([0.0, cy(z), float(z)])
        rx = np.interp(z, canal_z, [r[0] for r in canal_r])
        ry = np.interp(z, canal_z, [r[1] for r in canal_r])
        half_h = 8.5 if thoracic else 6.5
        body_r = np.array([13.0, 11.0, half_h]) if thoracic else np.array([9.5, 8.0, half_h])
        if n == 0:  # atlas: anterior arch, lateral masses and the dens of C2 in front of the canal
            front = c + (0, -ry - 7.5, -3)
            bodies += [Ellipsoid(c + (0, -ry - 12, 0), (9, 3.5, 5)), Ellipsoid(front, (5, 5, 11))]
            bodies += [Ellipsoid(c + (s * 17, -4, 0), (7, 9, 7)) for s in (1, -1)]
        else:
            centre = c + (0, -ry - 2.0 - body_r[1], 0)
            bodies.append(Ellipsoid(centre, body_r, power=3.0))
            marrow.append(Ellipsoid(centre, body_r - 1.6, power=3.0))
        behind = lambda x, y, z, c=c: y > c[1] - 4  # noqa: E731  the arch is behind the canal centre
        arches.append(Ellipsoid(c, (rx + 5.0, ry + 5.0, 5.0), power=2.5, keep=[behind]))
        spine_len = 30.0 if n in (1, 6, 7) else (28.0 if thoracic else 17.0)
        slope = 0.7 if thoracic else 0.3
        processes += tube([c + (0, ry + 2, 0), c + (0, ry + spine_len, -slope * spine_len)], [(3.0, 2.2)] * 2)
        reach = 26.0 if thoracic else 16.0
        for s in (1, -1):
            processes += tube([c + (s * rx, -2.0, 0), c + (s * (rx + reach), 4.0 if thoracic else -4.0, 0)],
                              [(4.0, 3.0)] * 2)
    column = [(0, cy(z) - 21.0, z) for z in (-60, -150, -190, -460)]
    add(tube(column, [(8.5, 7.5), (9.5, 8), (12.5, 10.5), (14, 12)], hints=(1, 0, 0), step_mm=8.0), "disc")
    add(bodies + arches + processes, "cortical")
    add(marrow, "cancellous")
    add(tube(canal_pts, canal_r, hints=(1, 0, 0), step_mm=6.0, caps=("round", "flat")), "csf")


def _chest(add) -> None:
    """Lung apices, ribs, clavicles, sternum, scapulae and humeral heads (structseg field of view)."""
    add([Ellipsoid((s * 58, 2, -335), (50, 62, 108)) for s in (1, -1)], "lung")
    ribs, marrow = [], []
    for k, z in enumerate(SPINE_LEVELS[7:12]):
        rx, ry, yc = 58.0 + 12 * k, 50.0 + 7 * k, 2.0
        angles = np.deg2rad([18, 50, 85, 120, 150])
        for s in (1, -1):
            pts = [(s * rx * np.sin(a), yc + ry * np.cos(a), z - 45.0 * a / np.pi) for a in angles]
            ribs += tube(pts, [(4.5, 3.0)] * 5, hints=(0, 0, 1), step_mm=8.0)
    for s in (1, -1):
        clavicle = [side_point(s, *q)
                    for q in ((18, -62, -200), (60, -60, -195), (105, -40, -188), (140, -5, -183))]
        ribs += tube(clavicle, [(7, 7)] * 4, step_mm=6.0)
        marrow += tube(clavicle, [(4, 4)] * 4, step_mm=6.0)
        ribs += [Ellipsoid(side_point(s, 100, 72, -265), (35, 6, 60), rot=rotation(rz_deg=s * 25).T),
                 Ellipsoid(side_point(s, 165, 15, -215), (24, 24, 24))]
        ribs += tube([side_point(s, 167, 15, -215), side_point(s, 175, 20, -460)], [(13, 13)] * 2, step_mm=20)
        marrow += [Ellipsoid(side_point(s, 165, 15, -215), (21, 21, 21))]
    ribs.append(Ellipsoid((0, -72, -235), (22, 7, 25)))
    marrow.append(Ellipsoid((0, -72, -235), (20, 5, 23)))
    add(ribs, "cortical")
    add(marrow, "cancellous")

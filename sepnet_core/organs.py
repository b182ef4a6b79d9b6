"""The 22 StructSeg 2019 task-1 organs-at-risk: the one table everything else reads.

Label 0 is background; organs are 1..22 as in the challenge's label files. Importance weights are
the challenge's per-organ weights as recalled in ``shared/paper.md`` (unconfirmed by the organisers'
text available to us); they weight both Dice and HD95 in :func:`sepnet_core.metrics.weighted_average`.
Colours are RGB in [0, 255], chosen so that left/right partners share a hue family and neighbouring
organs differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Organ",
    "ORGANS",
    "NUM_CLASSES",
    "NUM_ORGANS",
    "BACKGROUND",
    "organ_by_id",
    "organ_by_key",
    "lr_swap_table",
    "importance_weights",
    "colour_table",
]


@dataclass(frozen=True)
class Organ:
    """One organ-at-risk.

    Attributes:
        label: Integer label in StructSeg label files (1..22).
        name: Human-readable name, e.g. ``"Optic nerve L"``.
        key: Short snake-case key used in table columns and file names, e.g. ``"optic_nerve_l"``.
        partner: Label of the left/right partner organ, or ``None`` for midline organs.
        weight: StructSeg importance weight (unconfirmed recollection, see module docstring).
        colour: Display colour, RGB 0..255.
    """

    label: int
    name: str
    key: str
    partner: int | None
    weight: float
    colour: tuple[int, int, int]

    @property
    def colour_float(self) -> tuple[float, float, float]:
        """The display colour as RGB floats in [0, 1] (matplotlib's convention)."""
        return tuple(c / 255.0 for c in self.colour)  # type: ignore[return-value]


BACKGROUND = 0

ORGANS: tuple[Organ, ...] = (
    Organ(1, "Brain stem", "brain_stem", None, 100, (230, 25, 75)),
    Organ(2, "Eye L", "eye_l", 3, 100, (60, 180, 75)),
    Organ(3, "Eye R", "eye_r", 2, 100, (150, 220, 110)),
    Organ(4, "Lens L", "lens_l", 5, 50, (255, 225, 25)),
    Organ(5, "Lens R", "lens_r", 4, 50, (255, 250, 160)),
    Organ(6, "Optic nerve L", "optic_nerve_l", 7, 80, (0, 130, 200)),
    Organ(7, "Optic nerve R", "optic_nerve_r", 6, 80, (100, 190, 255)),
    Organ(8, "Optic chiasm", "optic_chiasm", None, 50, (245, 130, 48)),
    Organ(9, "Temporal lobe L", "temporal_lobe_l", 10, 80, (145, 30, 180)),
    Organ(10, "Temporal lobe R", "temporal_lobe_r", 9, 80, (200, 130, 230)),
    Organ(11, "Pituitary", "pituitary", None, 50, (70, 240, 240)),
    Organ(12, "Parotid L", "parotid_l", 13, 50, (240, 50, 230)),
    Organ(13, "Parotid R", "parotid_r", 12, 50, (250, 160, 240)),
    Organ(14, "Inner ear L", "inner_ear_l", 15, 70, (210, 245, 60)),
    Organ(15, "Inner ear R", "inner_ear_r", 14, 70, (235, 255, 170)),
    Organ(16, "Middle ear L", "middle_ear_l", 17, 70, (0, 128, 128)),
    Organ(17, "Middle ear R", "middle_ear_r", 16, 70, (80, 200, 200)),
    Organ(18, "TMJ L", "tmj_l", 19, 60, (170, 110, 40)),
    Organ(19, "TMJ R", "tmj_r", 18, 60, (220, 170, 100)),
    Organ(20, "Spinal cord", "spinal_cord", None, 100, (128, 0, 0)),
    Organ(21, "Mandible L", "mandible_l", 22, 100, (128, 128, 0)),
    Organ(22, "Mandible R", "mandible_r", 21, 100, (190, 190, 80)),
)

NUM_ORGANS = len(ORGANS)
"""Number of organs-at-risk (22)."""

NUM_CLASSES = NUM_ORGANS + 1
"""Number of classes including background (23)."""

_BY_ID = {o.label: o for o in ORGANS}
_BY_KEY = {o.key: o for o in ORGANS}


def organ_by_id(label: int) -> Organ:
    """Return the organ with StructSeg label ``label`` (1..22).

    Raises:
        ValueError: if ``label`` is not an organ label.
    """
    try:
        return _BY_ID[int(label)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"label={label!r} is not an organ label; valid labels are 1..{NUM_ORGANS}") from None


def organ_by_key(key: str) -> Organ:
    """Return the organ with short key ``key`` (e.g. ``"parotid_l"``).

    Raises:
        ValueError: if ``key`` is unknown; the message lists the valid keys.
    """
    try:
        return _BY_KEY[key]
    except KeyError:
        raise ValueError(f"unknown organ key {key!r}; valid keys: {', '.join(_BY_KEY)}") from None


def lr_swap_table() -> np.ndarray:
    """Label permutation that swaps every left/right organ pair; background and midline map to themselves.

    Returns:
        int64 array of shape (23,), ``table[label]`` is the label after a left/right mirror.
        Apply with ``table[labels]``.
    """
    table = np.arange(NUM_CLASSES, dtype=np.int64)
    for organ in ORGANS:
        if organ.partner is not None:
            table[organ.label] = organ.partner
    return table


def importance_weights() -> np.ndarray:
    """StructSeg importance weights of organs 1..22 as a float64 array of shape (22,)."""
    return np.array([o.weight for o in ORGANS], dtype=np.float64)


def colour_table() -> np.ndarray:
    """RGB colours in [0, 1], float64 array of shape (23, 3); row 0 (background) is black."""
    table = np.zeros((NUM_CLASSES, 3), dtype=np.float64)
    for organ in ORGANS:
        table[organ.label] = organ.colour_float
    return table

"""CT numbers of the phantom's tissues: one table of means and spreads in Hounsfield units (HU).

Values are typical literature values for non-contrast head-and-neck CT at 120 kVp (textbook ranges
of radiology references; no single source), rounded. ``mean`` is the tissue's average CT number;
``texture`` is the standard deviation of its smooth (low-frequency, ~2 mm) intensity variation
inside one scan. Scanner noise (white, default 20 HU) is added on top by the generator, and each
case shifts every soft-tissue mean by a small random offset (calibration drift, see
:data:`CASE_SHIFT_HU`). The table is rendered in ``docs/phantom.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Tissue", "TISSUES", "TISSUE_ID", "CASE_SHIFT_HU", "tissue_tables"]


@dataclass(frozen=True)
class Tissue:
    """One tissue class.

    Attributes:
        name: Key used by the anatomy (e.g. ``"brain_white"``).
        mean: Mean CT number, HU.
        texture: Standard deviation of the smooth within-tissue variation, HU.
        note: What the value stands for (for the documentation table).
    """

    name: str
    mean: float
    texture: float
    note: str


TISSUES: tuple[Tissue, ...] = (
    Tissue("air", -1000.0, 0.0, "air around the head and in the airway"),
    Tissue("lung", -850.0, 40.0, "lung apex parenchyma"),
    Tissue("foam", -900.0, 10.0, "couch core (foam)"),
    Tissue("headrest", -350.0, 60.0, "head-rest cushion (polymer foam / beads)"),
    Tissue("couch", 250.0, 40.0, "couch shell (carbon fibre)"),
    Tissue("fat", -100.0, 12.0, "subcutaneous and deep fat (-120..-80)"),
    Tissue("orbital_fat", -90.0, 12.0, "retro-bulbar fat"),
    Tissue("skin", 45.0, 10.0, "skin and ear cartilage"),
    Tissue("muscle", 50.0, 8.0, "skeletal muscle (40..60)"),
    Tissue("soft", 40.0, 10.0, "mixed soft tissue, mucosa, glands (30..50)"),
    Tissue("parotid", 0.0, 14.0, "parotid gland, fatty glandular tissue (-30..+30)"),
    Tissue("blood", 45.0, 5.0, "vessels, non-contrast blood (40..50)"),
    Tissue("thyroid", 100.0, 12.0, "thyroid gland, iodine-rich (80..120)"),
    Tissue("cartilage", 110.0, 25.0, "laryngeal and nasal cartilage"),
    Tissue("disc", 85.0, 10.0, "intervertebral disc"),
    Tissue("csf", 8.0, 3.0, "cerebrospinal fluid (0..15)"),
    Tissue("brain_grey", 38.0, 3.0, "cortical grey matter (35..45)"),
    Tissue("brain_white", 29.0, 3.0, "white matter, brain stem, cerebellar core (25..32)"),
    Tissue("nerve", 32.0, 4.0, "optic nerve, chiasm, spinal cord"),
    Tissue("pituitary", 42.0, 5.0, "pituitary gland, non-contrast"),
    Tissue("vitreous", 8.0, 3.0, "vitreous body of the eye (0..15)"),
    Tissue("sclera", 55.0, 6.0, "eye wall"),
    Tissue("lens", 105.0, 8.0, "crystalline lens (90..130)"),
    Tissue("labyrinth", 15.0, 5.0, "inner-ear fluid"),
    Tissue("cancellous", 350.0, 70.0, "cancellous bone / marrow, diploe (200..500)"),
    Tissue("cortical", 1350.0, 150.0, "cortical bone (1000..1800)"),
    Tissue("petrous", 1750.0, 120.0, "petrous temporal bone, otic capsule (1500..2000)"),
    Tissue("ossicle", 900.0, 100.0, "ossicles (small, partial-volume)"),
    Tissue("mastoid", -450.0, 380.0, "mastoid and ethmoid air cells (air/bone honeycomb)"),
    Tissue("tooth", 2400.0, 250.0, "teeth, enamel and dentin (1500..3000)"),
)
"""All tissues; the index in this tuple is the tissue id used by the rasteriser (0 is air)."""

TISSUE_ID: dict[str, int] = {t.name: i for i, t in enumerate(TISSUES)}
"""Tissue name -> id (index in :data:`TISSUES`)."""

CASE_SHIFT_HU = 3.0
"""Standard deviation (HU) of the per-case random offset added to every tissue mean between -200 and
+200 HU (scanner calibration and patient differences), so that a fixed HU window does not fit every
case equally well."""


def tissue_tables(shift_hu: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Look-up tables of mean and texture per tissue id.

    Args:
        shift_hu: Offset (HU) added to the means of the soft tissues (means in -200..200 HU).

    Returns:
        ``(means, textures)``: two float32 arrays of shape ``(len(TISSUES),)`` in HU.
    """
    means = np.array([t.mean for t in TISSUES], dtype=np.float32)
    soft = (means > -200) & (means < 200)
    means[soft] += np.float32(shift_hu)
    textures = np.array([t.texture for t in TISSUES], dtype=np.float32)
    return means, textures

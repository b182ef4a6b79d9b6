"""Cases prepared for training and validation: read once, cropped in-plane, intensity-transformed.

Preprocessing follows the reference code: no resampling; every slice is centre-cropped (or padded
with air, -1000 HU) to ``crop_yx``; then the intensity transform (SLF or window) maps HU to network
intensities. Labels get the same crop (padding is background). Volumes stay in memory: a StructSeg
case cropped to 256 x 256 is about 35 MB as float32, the phantom's cpu cases about 3 MB.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepnet_core.data.io import check_name, list_cases, read_case
from sepnet_core.data.preprocess import crop_label, preprocess
from sepnet_core.intensity import AIR_HU, Intensity

__all__ = ["PreparedCase", "AIR_HU", "prepare_case", "load_split"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedCase:
    """One case ready for the network.

    Attributes:
        case_id: Folder name.
        image: float32 (z, y, x) network intensities, cropped/padded to ``crop_yx``.
        label: uint8 (z, y, x) labels 0..22 on the same grid.
        spacing_mm: Voxel spacing (z, y, x) in mm.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    spacing_mm: tuple[float, float, float]


def prepare_case(
    case_id: str,
    image_hu: np.ndarray,
    label: np.ndarray,
    spacing_mm: tuple[float, float, float],
    intensity: Intensity,
    crop_yx: tuple[int, int] | None,
) -> PreparedCase:
    """Crop/pad in-plane (air / background) and apply the intensity transform
    (:func:`sepnet_core.data.preprocess.preprocess`, as inference does).

    Args:
        case_id: Name of the case.
        image_hu: float (z, y, x) CT in HU.
        label: uint8 (z, y, x) labels.
        spacing_mm: (z, y, x) mm.
        intensity: HU -> network intensity transform.
        crop_yx: In-plane size (y, x) in voxels, or None to keep the slices whole.
    """
    image, _ = preprocess(image_hu, intensity, crop_yx)
    return PreparedCase(case_id, image, crop_label(label, crop_yx), tuple(spacing_mm))


def load_split(
    root: str | os.PathLike[str],
    split: str,
    intensity: Intensity,
    crop_yx: tuple[int, int] | None,
    required: bool = True,
) -> list[PreparedCase]:
    """Read and prepare every case of ``<root>/<split>/`` (each must have a label).

    Args:
        root: Dataset root.
        split: Split folder name.
        intensity: HU -> network intensity transform.
        crop_yx: In-plane crop/pad (y, x) or None.
        required: If False, a missing split folder gives an empty list instead of an error.

    Raises:
        FileNotFoundError/SepNetInputError: a split name that is not a single folder name, missing
            folders, cases without labels, unreadable files (from :func:`sepnet_core.data.io.list_cases`
            and :func:`~sepnet_core.data.io.read_case`).
    """
    check_name(split, "split name", Path(root) / split)  # even an optional split may not leave root
    if not required and not (Path(root) / split).is_dir():
        return []
    cases = []
    for folder in list_cases(root, split):
        case = read_case(folder, require_label=True)
        cases.append(prepare_case(case.case_id, case.image, case.label, case.geometry.spacing_mm,
                                  intensity, crop_yx))
    logger.info("%s/%s: %d cases loaded", root, split, len(cases))
    return cases

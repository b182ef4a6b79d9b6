"""The optional clinical outputs of ``sepnet predict``, written into its (temporary) output folder."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sepnet_core.clinical.statistics import ORGAN_STATISTICS_NAME, STATISTICS_NAME

__all__ = ["RTSTRUCT_NAME", "STATISTICS_NAME", "ORGAN_STATISTICS_NAME", "PREVIEW_NAME", "ClinicalOptions",
           "write_clinical_outputs"]

logger = logging.getLogger(__name__)

RTSTRUCT_NAME = "rtstruct.dcm"
PREVIEW_NAME = "preview.png"


@dataclass(frozen=True)
class ClinicalOptions:
    """Which optional outputs to write.

    Attributes:
        rtstruct: Write ``rtstruct.dcm`` (needs DICOM input).
        uncertainty_roi: With ``rtstruct``, add an ROI of the voxels above this uncertainty (nats), or None.
        statistics: Write ``organ_statistics.json`` and ``statistics.json`` (TotalSegmentator's schema).
        preview: Write ``preview.png``.
        reference: Uncertainty reference (:func:`~sepnet_core.clinical.statistics.load_uncertainty_reference`)
            for the statistics' flag, or None.
    """

    rtstruct: bool = False
    uncertainty_roi: float | None = None
    statistics: bool = False
    preview: bool = False
    reference: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        roi = self.uncertainty_roi
        if roi is not None and (not self.rtstruct or not np.isfinite(roi) or roi <= 0):
            raise ValueError(f"uncertainty_roi={roi!r} needs rtstruct=True and a finite value > 0 nats")

    @property
    def needs_image(self) -> bool:
        """Whether the CT itself is needed after inference (statistics, preview)."""
        return self.statistics or self.preview


def write_clinical_outputs(
    folder: Path,
    volume: Any,
    labels: np.ndarray,
    uncertainty: np.ndarray,
    options: ClinicalOptions,
    *,
    uncertainty_kind: str,
    num_members: int,
) -> tuple[dict[str, Any], list[str]]:
    """Write the requested outputs into ``folder``.

    Args:
        folder: Existing folder (the prediction's temporary output folder).
        volume: The :class:`~sepnet_core.data.inputs.InputVolume` (image, geometry, DICOM series).
        labels: (z, y, x) uint8 labels on the input's canonical grid.
        uncertainty: (z, y, x) float32 uncertainty (nats), same grid.
        options: What to write.
        uncertainty_kind: "vote_entropy" or "predictive_entropy".
        num_members: Ensemble size.

    Returns:
        ``(outputs, warnings)``: the report's description of each output written, and warnings for the
        user (an RT Structure Set with no ROI is not written).

    Raises:
        ValueError: ``rtstruct`` without DICOM series information.
    """
    outputs: dict[str, Any] = {}
    warnings: list[str] = []
    if options.rtstruct:
        from sepnet_core.clinical.rtstruct import EmptyStructureSetError, write_rtstruct

        if volume.dicom is None:
            raise ValueError("rtstruct needs DICOM input (volume.dicom is None)")
        roi = options.uncertainty_roi
        try:
            write_rtstruct(folder / RTSTRUCT_NAME, labels, volume.geometry, volume.dicom,
                           uncertainty=uncertainty if roi is not None else None, uncertainty_threshold=roi,
                           algorithm=f"ensemble of {num_members}")
        except EmptyStructureSetError as exc:
            warnings.append(f"{RTSTRUCT_NAME} not written: {exc}")
            outputs["rtstruct"] = {"file": None, "note": str(exc)}
        else:
            outputs["rtstruct"] = {"file": RTSTRUCT_NAME, "uncertainty_roi_nats": roi,
                                   "references_series": volume.dicom.series_instance_uid}
    if options.statistics:
        from sepnet_core.clinical.statistics import organ_statistics, write_statistics

        stats = organ_statistics(labels, volume.image, uncertainty, volume.geometry.spacing_mm,
                                 reference=options.reference, uncertainty_kind=uncertainty_kind,
                                 num_members=num_members)
        write_statistics(folder, stats)
        flagged = [key for key, entry in stats["organs"].items() if entry["high_uncertainty"]]
        outputs["statistics"] = {"file": ORGAN_STATISTICS_NAME, "totalsegmentator_file": STATISTICS_NAME,
                                 "flag_note": stats["flag"]["note"],
                                 "high_uncertainty": flagged}
    if options.preview:
        from sepnet_core.clinical.preview import write_preview

        write_preview(folder / PREVIEW_NAME, volume.image, labels, uncertainty, volume.geometry.spacing_mm,
                      title=f"{Path(volume.path).name}: SepNet, {num_members} member(s)")
        outputs["preview"] = {"file": PREVIEW_NAME}
    for warning in warnings:
        logger.warning("%s", warning)
    return outputs, warnings

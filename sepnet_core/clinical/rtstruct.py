"""DICOM RT Structure Set (RTSTRUCT) of a label map, written with pydicom for full control of conformance.

One ROI per organ present in the labels (ROI Number = the organ's label, name and display colour from
:mod:`sepnet_core.organs`, interpreted type ORGAN, generation algorithm AUTOMATIC), and optionally one
ROI of the voxels whose uncertainty exceeds a threshold (so a clinician sees where to look). Contours
are drawn on every image of the referenced CT series that holds the structure, as CLOSED_PLANAR
polygons along pixel edges (:func:`~sepnet_core.clinical.contours.mask_outlines`): filled with the
even-odd rule at pixel centres they give back exactly the labels, and their areas are exactly the
voxel areas. Holes are separate contours inside the outer one, which planning systems XOR (a system
that unions nested contours would fill holes; organs-at-risk seldom have any).

Conformance (checked with ``dciodvfy`` of dicom3tools in the tests): the modules of the RT Structure
Set IOD (Patient, General Study, RT Series, General Equipment, Frame of Reference, Structure Set, ROI
Contour, RT ROI Observations, Approval, SOP Common) with every type 1 and type 2 attribute; patient and
study attributes copied from the CT; decimal strings of at most 16 characters (coordinates rounded to
0.1 micrometre); the structure set is marked UNAPPROVED (a clinician must review it). Transfer syntax:
Implicit VR Little Endian, which every reader supports and which has no 64 KiB limit on a contour's
coordinate list. The ROI Contour Sequence, nearly all of the file, is encoded by :func:`_contour_items`
(pydicom's per-item datasets cost about 0.7 ms per contour); pydicom writes everything else.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.charset import convert_encodings
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, generate_uid

from sepnet_core import __version__
from sepnet_core.clinical.contours import mask_outlines
from sepnet_core.data.dicom import DicomSeriesInfo
from sepnet_core.data.geometry import Geometry
from sepnet_core.fileio import atomic_write
from sepnet_core.organs import ORGANS, Organ

__all__ = ["EmptyStructureSetError", "RT_STRUCTURE_SET_STORAGE", "UNCERTAINTY_ROI_NUMBER",
           "UNCERTAINTY_COLOUR", "format_ds", "build_rtstruct", "write_rtstruct"]


class EmptyStructureSetError(ValueError):
    """No ROI to write: no organ in the labels and no voxel above the uncertainty threshold."""


RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
"""SOP Class UID of RT Structure Set Storage."""
UNCERTAINTY_ROI_NUMBER = 100
"""ROI Number of the optional high-uncertainty ROI (organs use their labels 1..22)."""
UNCERTAINTY_COLOUR = (255, 255, 255)
"""Display colour of the high-uncertainty ROI (white: no organ uses it)."""

_STUDY_COMPONENT = "1.2.840.10008.3.1.2.3.1"  # Referenced SOP Class of the study (as planning systems expect)
_IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
_DS_MAX = 16
_ROI_CONTOUR_SEQUENCE = 0x30060039
_POSITION_TOL_MM = 1e-3


def format_ds(value: float) -> str:
    """A DICOM decimal string (DS) of at most 16 characters: fixed point, at most 4 decimals (0.1 um).

    Raises:
        ValueError: ``value`` is not finite or too large for 16 characters.

    Example:
        >>> format_ds(-123.456789), format_ds(2.0), format_ds(-0.00001)
        ('-123.4568', '2', '0')
    """
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"value={value!r} is not finite; a DICOM DS must be a number")
    for decimals in (4, 3, 2, 1, 0):
        text = f"{value:.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        if text == "-0":
            text = "0"
        if len(text) <= _DS_MAX:
            return text
    raise ValueError(f"value={value!r} does not fit the 16 characters of a DICOM DS")


_TRAILING_ZEROS = re.compile(r"(\.\d*?)0+(?=\\|$)")  # "1.2500" -> "1.25", "3.0000" -> "3."
_BARE_POINT = re.compile(r"\.(?=\\|$)")  # "3." -> "3"
_NEGATIVE_ZERO = re.compile(r"(?<![\d.])-0(?=\\|$)")  # "-0" -> "0"


def _ds_text(values: np.ndarray) -> str:
    """Backslash-separated DS text of many values, as :func:`format_ds` writes each (vectorised path for
    |value| < 1e10, where 4 decimals always fit 16 characters)."""
    values = np.asarray(values, dtype=np.float64)
    if not (np.all(np.isfinite(values)) and np.abs(values).max(initial=0.0) < 1e10):
        return "\\".join(format_ds(v) for v in values.tolist())
    text = "\\".join(["%.4f"] * values.size) % tuple(values.tolist())
    return _NEGATIVE_ZERO.sub("0", _BARE_POINT.sub("", _TRAILING_ZEROS.sub(r"\1", text)))


def _now() -> tuple[str, str]:
    now = _dt.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def _item(**attributes) -> Dataset:
    ds = Dataset()
    for key, value in attributes.items():
        setattr(ds, key, value)
    return ds


def _check_grid(file_shape: tuple[int, ...], geometry: Geometry, info: DicomSeriesInfo) -> None:
    """The labels' file grid must be the series' grid: same shape and slice positions."""
    expected = (info.num_slices, info.rows, info.columns)
    if tuple(file_shape) != expected:
        raise ValueError(f"labels in file order have shape {tuple(file_shape)}; the DICOM series is "
                         f"{expected} (slices, rows, columns)")
    file_grid = geometry.file_geometry
    for k in (0, info.num_slices - 1):
        point = np.asarray(file_grid.physical_point((k, 0, 0)))
        if np.abs(point - np.asarray(info.positions[k])).max() > max(_POSITION_TOL_MM, 0.01 * min(
                file_grid.spacing_mm)):
            raise ValueError(f"geometry places slice {k} at {point.tolist()} mm but the series has it at "
                             f"{list(info.positions[k])} mm; the labels are not on this series' grid")


def _element(tag: int, value: bytes, pad: bytes = b" ") -> bytes:
    """One data element in Implicit VR Little Endian: tag, 32-bit length, value padded to even length."""
    if len(value) % 2:
        value += pad
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def _items(items: Sequence[bytes]) -> bytes:
    """The value of a sequence: each encoded dataset as an item of explicit length."""
    return b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(item)) + item for item in items)


def _contour_items(mask_file: np.ndarray, info: DicomSeriesInfo) -> list[bytes]:
    """Encoded Contour Sequence items, one per outline of a (slices, rows, columns) mask, in slice order.

    Each item: Contour Image Sequence (the slice's SOP Class and Instance UIDs), Contour Geometric Type
    CLOSED_PLANAR, Number of Contour Points, Contour Number and Contour Data (x, y, z triplets in mm),
    elements in ascending tag order as the standard requires.
    """
    row_cos = np.asarray(info.orientation[:3])  # direction of increasing column index
    col_cos = np.asarray(info.orientation[3:])  # direction of increasing row index
    row_spacing, col_spacing = info.pixel_spacing
    sop_class = info.sop_class_uid.encode("ascii")
    items = []
    for k in np.nonzero(mask_file.reshape(mask_file.shape[0], -1).any(axis=1))[0]:
        origin = np.asarray(info.positions[k])
        image = _items([_element(0x00081150, sop_class, b"\0")
                        + _element(0x00081155, info.sop_instance_uids[k].encode("ascii"), b"\0")])
        for outline in mask_outlines(mask_file[k]):
            points = (origin + np.outer(outline[:, 1] * col_spacing, row_cos)
                      + np.outer(outline[:, 0] * row_spacing, col_cos))
            data = _ds_text(points.reshape(-1)).encode("ascii")
            items.append(_element(0x30060016, image) + _element(0x30060042, b"CLOSED_PLANAR")
                         + _element(0x30060046, str(len(outline)).encode())
                         + _element(0x30060048, str(len(items) + 1).encode()) + _element(0x30060050, data))
    return items


def _roi(number: int, name: str, colour: Sequence[int], description: str, mask_file: np.ndarray,
         info: DicomSeriesInfo, interpreted_type: str) -> tuple[Dataset, bytes, Dataset] | None:
    """(Structure Set ROI item, encoded ROI Contour item, RT ROI Observations item), or None for an
    empty mask."""
    contours = _contour_items(mask_file, info)
    if not contours:
        return None
    roi = _item(ROINumber=number, ReferencedFrameOfReferenceUID=info.frame_of_reference_uid, ROIName=name,
                ROIDescription=description, ROIGenerationAlgorithm="AUTOMATIC",
                ROIGenerationDescription=f"SepNet-Book {__version__}")
    colour_text = "\\".join(str(int(c)) for c in colour).encode("ascii")
    contour = (_element(0x3006002A, colour_text) + _element(0x30060040, _items(contours))
               + _element(0x30060084, str(number).encode("ascii")))
    observation = _item(ObservationNumber=number, ReferencedROINumber=number,
                        RTROIInterpretedType=interpreted_type, ROIInterpreter="")
    return roi, contour, observation


def build_rtstruct(
    labels: np.ndarray,
    geometry: Geometry,
    info: DicomSeriesInfo,
    *,
    uncertainty: np.ndarray | None = None,
    uncertainty_threshold: float | None = None,
    organs: Sequence[Organ] = ORGANS,
    algorithm: str = "",
) -> FileDataset:
    """The RT Structure Set (a pydicom ``FileDataset``) of ``labels`` referencing the CT series ``info``.

    Args:
        labels: (z, y, x) integer labels in the canonical order of ``geometry`` (as
            :func:`~sepnet_core.data.dicom.read_dicom_series` returned the image).
        geometry: The image's Geometry; ``geometry.to_file`` must give the series' (slices, rows, columns).
        info: The CT series (UIDs, slice SOP instances and positions, patient and study attributes).
        uncertainty: Optional (z, y, x) float map on the same grid (nats).
        uncertainty_threshold: With ``uncertainty``, add an ROI of the voxels above it (nats).
        organs: Organs to write (default all 22); only those present in ``labels`` become ROIs.
        algorithm: Text for the series description (e.g. "ensemble of 6 checkpoints").

    Returns:
        A ``pydicom.dataset.FileDataset`` ready to save (see :func:`write_rtstruct`).

    Raises:
        ValueError: Shapes or grids disagree, the threshold is given without a map (or is not a positive
            finite number), or no ROI would be written (no organ present and no uncertain voxel).
    """
    labels = np.asarray(labels)
    if labels.shape != geometry.shape:
        raise ValueError(f"labels shape {labels.shape} != geometry.shape {geometry.shape} (z, y, x)")
    if (uncertainty is None) != (uncertainty_threshold is None):
        raise ValueError("uncertainty and uncertainty_threshold must be given together")
    labels_file = np.asarray(geometry.to_file(labels))
    _check_grid(labels_file.shape, geometry, info)

    rois = []
    for organ in organs:
        roi = _roi(organ.label, organ.name, organ.colour, f"{organ.name} (label {organ.label}), automatic",
                   labels_file == organ.label, info, "ORGAN")
        if roi is not None:
            rois.append(roi)
    if uncertainty_threshold is not None:
        threshold = float(uncertainty_threshold)
        if not (np.isfinite(threshold) and threshold > 0):
            raise ValueError(f"uncertainty_threshold={uncertainty_threshold!r} must be a finite number > 0 "
                             "nats")
        if np.shape(uncertainty) != geometry.shape:
            raise ValueError(f"uncertainty shape {np.shape(uncertainty)} != geometry.shape {geometry.shape}")
        roi = _roi(UNCERTAINTY_ROI_NUMBER, f"Uncertainty > {threshold:g}", UNCERTAINTY_COLOUR,
                   f"voxels whose ensemble uncertainty exceeds {threshold:g} nats: review these regions",
                   np.asarray(geometry.to_file(np.asarray(uncertainty) > threshold)), info, "")
        if roi is not None:
            rois.append(roi)
    if not rois:
        raise EmptyStructureSetError("no organ in the labels and no uncertain voxel: the structure set "
                                     "would be empty")

    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = _IMPLICIT_VR_LITTLE_ENDIAN
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"SEPNET_{__version__}"[:16]
    ds = FileDataset("rtstruct.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    date, time = _now()
    attributes = dict(info.attributes)
    if any(not value.isascii() for value in attributes.values()):
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SOPClassUID, ds.SOPInstanceUID = RT_STRUCTURE_SET_STORAGE, sop_uid
    # Patient and General Study: copied from the CT (type 2: present, possibly empty).
    for name in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        setattr(ds, name, attributes.get(name, ""))
    if attributes.get("StudyDescription"):
        ds.StudyDescription = attributes["StudyDescription"]
    ds.StudyInstanceUID = info.study_instance_uid
    # RT Series and General Equipment.
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.SeriesDescription = ("SepNet auto-contours" + (f", {algorithm}" if algorithm else ""))[:64]
    ds.OperatorsName = ""
    ds.Manufacturer = "SepNet-Book"
    ds.ManufacturerModelName = "SepNet-Book"
    ds.SoftwareVersions = __version__
    # Frame of Reference (shared with the CT).
    ds.FrameOfReferenceUID = info.frame_of_reference_uid
    ds.PositionReferenceIndicator = attributes.get("PositionReferenceIndicator", "")
    # Structure Set.
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "SepNet OARs"
    ds.StructureSetName = "SepNet organs-at-risk"
    ds.StructureSetDescription = "Automatic contours; review before clinical use"
    ds.StructureSetDate, ds.StructureSetTime = date, time
    images = [_item(ReferencedSOPClassUID=info.sop_class_uid, ReferencedSOPInstanceUID=uid)
              for uid in info.sop_instance_uids]
    series = _item(SeriesInstanceUID=info.series_instance_uid, ContourImageSequence=images)
    study = _item(ReferencedSOPClassUID=_STUDY_COMPONENT, ReferencedSOPInstanceUID=info.study_instance_uid,
                  RTReferencedSeriesSequence=[series])
    ds.ReferencedFrameOfReferenceSequence = [_item(FrameOfReferenceUID=info.frame_of_reference_uid,
                                                   RTReferencedStudySequence=[study])]
    ds.StructureSetROISequence = [r[0] for r in rois]
    # The ROI Contour Sequence (nearly all of the file) is encoded here, not by pydicom, which spends
    # ~0.7 ms per contour building and writing item datasets; pydicom writes it as it is (raw element,
    # same transfer syntax and character set) and reads it back like any other.
    body = _items([r[1] for r in rois])
    tag = Tag(_ROI_CONTOUR_SEQUENCE)
    ds[tag] = RawDataElement(tag, "SQ", len(body), body, 0, True, True)
    ds.RTROIObservationsSequence = [r[2] for r in rois]
    ds.ApprovalStatus = "UNAPPROVED"
    charset = ds.get("SpecificCharacterSet")
    ds.set_original_encoding(True, True, convert_encodings(charset) if charset else None)
    return ds


def write_rtstruct(path: str | os.PathLike[str], labels: np.ndarray, geometry: Geometry,
                   info: DicomSeriesInfo, *, overwrite: bool = False, **options) -> Path:
    """Build the RT Structure Set (:func:`build_rtstruct`, same arguments) and write it atomically.

    Args:
        path: Destination file (``rtstruct.dcm``); its folder must exist.
        overwrite: Replace an existing file. Default ``False``.

    Returns:
        ``path`` as a Path.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        ValueError: see :func:`build_rtstruct`.
    """
    ds = build_rtstruct(labels, geometry, info, **options)
    with atomic_write(path, overwrite=overwrite) as tmp:
        ds.save_as(tmp, enforce_file_format=True, implicit_vr=True, little_endian=True)
    return Path(path)

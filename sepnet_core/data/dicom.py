"""Reading one DICOM CT series (a folder or a zip of one) into HU, a Geometry and the slice references.

A series is the set of files sharing a SeriesInstanceUID. Its slices are sorted by the position of
their ImagePositionPatient along the slice normal (row cosine x column cosine of
ImageOrientationPatient), ascending, as ITK/GDCM do; that order is the *file* slice order of the
returned :class:`~sepnet_core.data.geometry.Geometry` (``geometry.to_file`` of any output gives arrays
whose axis 0 is :attr:`DicomSeriesInfo.sop_instance_uids`). The image itself is returned in the
package's canonical orientation, like :func:`sepnet_core.data.io.read_image`.

Checks, each failing with a one-line :class:`~sepnet_core.errors.SepNetInputError` that names the
folder, zip or file and the problem: no DICOM file; several series and no (or an unknown) ``series_uid``
(the message lists the series); a modality other than CT; multi-frame images; missing geometry
attributes; slices of different sizes, pixel spacings or orientations; positions not stacked along the
normal (gantry tilt); two slices at one position; a missing slice (a gap that is a multiple of the
usual spacing); otherwise inconsistent slice spacing; pixel data that cannot be decoded (a transfer syntax
without a decoder is named in the message).

Pixel data is decoded by pydicom, compressed data (JPEG Lossless, JPEG-LS, JPEG 2000, RLE) through its GDCM
plugin: see :mod:`sepnet_core.data._dicom_pixels`.

A zip is extracted into a temporary folder that is removed afterwards; a member with an absolute path,
a ``..`` component or a symbolic link is refused before anything is extracted.

Units: positions and spacings in mm (DICOM patient coordinates, LPS); intensities in HU
(stored value x RescaleSlope + RescaleIntercept).
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from sepnet_core.data._dicom_pixels import SUPPORTED_COMPRESSION, read_slice_hu
from sepnet_core.data.geometry import Geometry
from sepnet_core.data.io import InputNotFoundError
from sepnet_core.errors import SepNetInputError

__all__ = [
    "CT_IMAGE_STORAGE",
    "SUPPORTED_COMPRESSION",
    "DicomSeriesInfo",
    "SeriesSummary",
    "STUDY_ATTRIBUTES",
    "list_series",
    "read_dicom_series",
    "dicom_folder",
]

logger = logging.getLogger(__name__)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
"""SOP Class UID of (single-frame) CT Image Storage."""

STUDY_ATTRIBUTES: tuple[str, ...] = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription", "PositionReferenceIndicator",
)
"""Patient, study and frame-of-reference attributes copied from the CT into derived objects (RTSTRUCT)."""

_HEADER_TAGS = (
    "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID", "SOPInstanceUID", "SOPClassUID",
    "Modality", "SeriesDescription", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
    "Rows", "Columns", "NumberOfFrames", "SpecificCharacterSet", *STUDY_ATTRIBUTES,
)
_SKIP_NAMES = {"DICOMDIR"}
_ORIENTATION_TOL = 1e-4  # direction cosines: unit length, orthogonality, equality across slices
_SPACING_REL_TOL = 0.01  # slice spacing and in-plane position deviations, fraction of the spacing
_POSITION_TOL_MM = 0.02  # ... but at least this (positions written with 2 decimals differ by <= 0.01 mm)


@dataclass(frozen=True)
class SeriesSummary:
    """One series found in a folder: its UID, modality, description and number of files."""

    uid: str
    modality: str
    description: str
    files: int

    def describe(self) -> str:
        """``UID (CT, 120 files, 'description')`` for messages."""
        text = f"{self.uid} ({self.modality or '?'}, {self.files} file{'s' * (self.files != 1)}"
        return text + (f", {self.description!r})" if self.description else ")")


@dataclass(frozen=True)
class DicomSeriesInfo:
    """What derived DICOM objects (an RT Structure Set) need to reference a CT series.

    Attributes:
        source: The folder or zip file given by the user.
        series_instance_uid, study_instance_uid, frame_of_reference_uid: UIDs of the CT series.
        sop_class_uid: SOP Class UID of the slices (CT Image Storage).
        sop_instance_uids: SOPInstanceUID of each slice in file slice order (ascending along the normal).
        positions: ImagePositionPatient (x, y, z) mm of each slice, same order.
        orientation: ImageOrientationPatient: row cosine (3) then column cosine (3).
        pixel_spacing: PixelSpacing (row spacing, column spacing) in mm, DICOM's order.
        rows, columns: Pixels per slice.
        series_description: SeriesDescription of the CT ("" if absent).
        attributes: :data:`STUDY_ATTRIBUTES` present in the first slice, as strings.
    """

    source: str
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str
    sop_class_uid: str
    sop_instance_uids: tuple[str, ...]
    positions: tuple[tuple[float, float, float], ...]
    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    series_description: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def num_slices(self) -> int:
        """Number of slices (images) of the series."""
        return len(self.sop_instance_uids)

    def to_dict(self) -> dict[str, object]:
        """A short JSON-able description (UIDs, slice count, orientation; no patient data)."""
        return {"series_instance_uid": self.series_instance_uid,
                "study_instance_uid": self.study_instance_uid,
                "frame_of_reference_uid": self.frame_of_reference_uid, "slices": self.num_slices,
                "rows": self.rows, "columns": self.columns, "orientation": list(self.orientation),
                "pixel_spacing_mm": list(self.pixel_spacing), "series_description": self.series_description}


# ------------------------------------------------------------------------------------------- sources
def _check_member(source: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise SepNetInputError(f"{source}: zip member {name!r} would be extracted outside the target folder "
                               "(absolute path or '..'); refusing the archive")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise SepNetInputError(f"{source}: zip member {name!r} is a symbolic link; refusing the archive")
    if info.flag_bits & 0x1:
        raise SepNetInputError(f"{source}: zip member {name!r} is encrypted")


@contextmanager
def dicom_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a folder holding the DICOM files of ``path``: the folder itself, or a zip extracted to a
    temporary folder (removed on exit) after checking every member name.

    Raises:
        SepNetInputError: ``path`` is neither a folder nor a readable zip, or a member is unsafe.
    """
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not path.is_file():
        raise SepNetInputError(f"{path}: not a folder or a zip file")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SepNetInputError(f"{path}: not a readable zip archive ({exc})") from None
    with archive, tempfile.TemporaryDirectory(prefix="sepnet-dicom-") as tmp:
        root = Path(tmp).resolve()
        members = archive.infolist()
        for info in members:
            _check_member(path, info)
            if not (root / info.filename).resolve().is_relative_to(root):
                raise SepNetInputError(f"{path}: zip member {info.filename!r} would be extracted outside "
                                       "the target folder; refusing the archive")
        try:
            archive.extractall(root, members=[m for m in members if not m.is_dir()])
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise SepNetInputError(f"{path}: cannot extract the zip archive ({exc})") from None
        yield root


# ------------------------------------------------------------------------------------------- headers
def _headers(folder: Path, source: Path) -> dict[str, list[tuple[Path, object]]]:
    """DICOM headers of every file below ``folder`` grouped by SeriesInstanceUID (non-DICOM skipped)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    series: dict[str, list[tuple[Path, object]]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.upper() in _SKIP_NAMES:
                continue
            file = Path(dirpath) / name
            try:
                ds = pydicom.dcmread(file, stop_before_pixels=True, specific_tags=list(_HEADER_TAGS))
            except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError):
                logger.debug("%s: skipped, not a DICOM file", file)
                continue
            uid = str(getattr(ds, "SeriesInstanceUID", "") or "")
            if not uid:
                logger.debug("%s: skipped, no SeriesInstanceUID", file)
                continue
            series.setdefault(uid, []).append((file, ds))
    if not series:
        raise SepNetInputError(f"{source}: no DICOM files found (a folder or zip of one CT series is needed)")
    return series


def _summaries(series: dict[str, list[tuple[Path, object]]]) -> list[SeriesSummary]:
    out = []
    for uid, items in series.items():
        first = items[0][1]
        out.append(SeriesSummary(uid, str(getattr(first, "Modality", "") or ""),
                                 str(getattr(first, "SeriesDescription", "") or ""), len(items)))
    return sorted(out, key=lambda s: s.uid)


def list_series(path: str | os.PathLike[str]) -> list[SeriesSummary]:
    """The series in a DICOM folder or zip, sorted by UID.

    Raises:
        SepNetInputError: no DICOM file, or an unsafe/unreadable zip.
    """
    with dicom_folder(path) as folder:
        return _summaries(_headers(folder, Path(path)))


def _floats(ds: object, name: str, count: int, file: Path) -> tuple[float, ...]:
    value = getattr(ds, name, None)
    try:
        values = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        values = ()
    if len(values) != count or not np.all(np.isfinite(values)):
        raise SepNetInputError(f"{file}: {name} is missing or invalid ({value!r}); need {count} numbers")
    return values


def _choose(series: dict[str, list], series_uid: str | None, source: Path) -> str:
    if series_uid is not None:
        if series_uid not in series:
            listed = "; ".join(s.describe() for s in _summaries(series))
            raise SepNetInputError(f"{source}: no series with UID {series_uid}; series found: {listed}")
        return series_uid
    if len(series) > 1:
        listed = "; ".join(s.describe() for s in _summaries(series))
        raise SepNetInputError(f"{source}: holds {len(series)} DICOM series; choose one with --series UID: "
                               f"{listed}")
    return next(iter(series))


# ------------------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class _Stack:
    order: list[int]  # header indices in ascending position along the normal
    spacing: float  # mm between slices
    direction: tuple[float, ...]  # ITK direction, row-major


def _stack(items: list[tuple[Path, object]], source: Path, uid: str) -> _Stack:
    """Sort the slices along the normal and check sizes, orientation and spacing."""
    first_file, first = items[0]
    orient = np.array(_floats(first, "ImageOrientationPatient", 6, first_file))
    spacing_rc = _floats(first, "PixelSpacing", 2, first_file)
    size = (getattr(first, "Rows", None), getattr(first, "Columns", None))
    row_cos, col_cos = orient[:3], orient[3:]
    unit = max(abs(np.linalg.norm(row_cos) - 1), abs(np.linalg.norm(col_cos) - 1))
    if unit > _ORIENTATION_TOL or abs(row_cos @ col_cos) > _ORIENTATION_TOL or min(spacing_rc) <= 0:
        raise SepNetInputError(f"{first_file}: ImageOrientationPatient {orient.tolist()} is not two "
                               f"orthogonal unit vectors, or PixelSpacing {list(spacing_rc)} is not positive")
    positions = []
    for file, ds in items:
        frames = getattr(ds, "NumberOfFrames", None)
        if frames is not None and int(frames) > 1:
            raise SepNetInputError(f"{file}: multi-frame image ({int(frames)} frames); only single-frame CT "
                                   "series are supported")
        if (getattr(ds, "Rows", None), getattr(ds, "Columns", None)) != size:
            raise SepNetInputError(f"{source}: series {uid} mixes image sizes: {first_file.name} is "
                                   f"{size[0]} x {size[1]}, {file.name} is {ds.Rows} x {ds.Columns}")
        if (not np.allclose(_floats(ds, "ImageOrientationPatient", 6, file), orient, atol=_ORIENTATION_TOL)
                or not np.allclose(_floats(ds, "PixelSpacing", 2, file), spacing_rc, rtol=1e-4, atol=1e-5)):
            raise SepNetInputError(f"{source}: series {uid} mixes orientations or pixel spacings "
                                   f"({first_file.name} and {file.name} differ)")
        positions.append(_floats(ds, "ImagePositionPatient", 3, file))
    if len(items) < 2:
        raise SepNetInputError(f"{source}: series {uid} has a single slice; a 3D CT series is needed")
    normal = np.cross(row_cos, col_cos)
    normal /= np.linalg.norm(normal)
    pos = np.array(positions)
    along = pos @ normal
    order = np.argsort(along, kind="stable")
    along, pos = along[order], pos[order]
    gaps = np.diff(along)
    name = [items[i][0].name for i in order]
    if gaps.min() < 1e-3:
        k = int(np.argmin(gaps))
        raise SepNetInputError(f"{source}: series {uid} has two slices at the same position "
                               f"{along[k]:.3f} mm along the normal ({name[k]} and {name[k + 1]})")
    usual = float(np.median(gaps))
    tol = max(_SPACING_REL_TOL * usual, _POSITION_TOL_MM)
    offsets = pos - np.outer(along, normal)  # in-plane part of each position
    drift = float(np.abs(offsets - offsets[0]).max())
    if drift > max(_SPACING_REL_TOL * min(min(spacing_rc), usual), _POSITION_TOL_MM):
        raise SepNetInputError(f"{source}: series {uid}: slice positions are not stacked along the slice "
                               f"normal (shifted up to {drift:.3f} mm in-plane; gantry tilt?); resample it "
                               "first")
    if np.abs(gaps - usual).max() > tol:
        multiples = gaps / usual
        k = int(np.argmax(np.abs(gaps - usual)))
        if np.all(np.abs(multiples - np.round(multiples)) * usual <= tol) and multiples.max() >= 1.5:
            missing = int(np.round(multiples).sum()) - len(gaps)
            raise SepNetInputError(
                f"{source}: series {uid} misses {missing} slice(s): a gap of {gaps[k]:.3f} mm between "
                f"{name[k]} and {name[k + 1]} (positions {along[k]:.3f} and {along[k + 1]:.3f} mm along "
                f"the normal) where the spacing is {usual:.3f} mm")
        raise SepNetInputError(f"{source}: series {uid} has inconsistent slice spacing: {gaps.min():.3f} to "
                               f"{gaps.max():.3f} mm (e.g. {gaps[k]:.3f} mm between {name[k]} and "
                               f"{name[k + 1]})")
    spacing = float((along[-1] - along[0]) / (len(along) - 1))
    matrix = np.stack([row_cos, col_cos, normal], axis=1)  # columns: ITK index axes x, y, z
    return _Stack([int(i) for i in order], spacing, tuple(matrix.reshape(-1).tolist()))


def read_dicom_series(
    path: str | os.PathLike[str], series_uid: str | None = None
) -> tuple[np.ndarray, Geometry, DicomSeriesInfo]:
    """Read one CT series from a folder (searched recursively) or a zip of one.

    Args:
        path: Folder or ``.zip`` file holding the series' files (other files are skipped).
        series_uid: SeriesInstanceUID to read when several series are present.

    Returns:
        ``(image, geometry, info)``: image float32 HU (z, y, x) in canonical orientation, its
        :class:`Geometry` (``geometry.file_geometry`` is the series' own grid, slices ascending along the
        normal) and the :class:`DicomSeriesInfo` (slices in that file order).

    Raises:
        InputNotFoundError: ``path`` does not exist (also a FileNotFoundError).
        SepNetInputError: every problem listed in the module docstring (one line, naming the input).
    """
    source = Path(path)
    if not source.exists():
        raise InputNotFoundError(f"{source}: input does not exist")
    with dicom_folder(source) as folder:
        series = _headers(folder, source)
        uid = _choose(series, series_uid, source)
        items = series[uid]
        first_file, first = items[0]
        modalities = sorted({str(getattr(ds, "Modality", "") or "missing") for _, ds in items})
        if modalities != ["CT"]:
            raise SepNetInputError(f"{source}: series {uid} has modality {' and '.join(modalities)}; "
                                   "sepnet segments CT only")
        for name in ("StudyInstanceUID", "FrameOfReferenceUID", "SOPInstanceUID", "Rows", "Columns"):
            lacking = next((f for f, ds in items if not getattr(ds, name, None)), None)
            if lacking is not None:
                raise SepNetInputError(f"{lacking}: {name} is missing (series {uid})")
        stack = _stack(items, source, uid)
        ordered = [items[i] for i in stack.order]
        rows, columns = int(first.Rows), int(first.Columns)
        file_array = np.stack([read_slice_hu(file, rows, columns) for file, _ in ordered])
    pixel_spacing = _floats(first, "PixelSpacing", 2, first_file)
    positions = tuple(_floats(ds, "ImagePositionPatient", 3, f) for f, ds in ordered)
    try:
        geometry = Geometry.from_file_grid(file_array.shape, (stack.spacing, *pixel_spacing), positions[0],
                                           stack.direction)
    except ValueError as exc:
        raise SepNetInputError(f"{source}: invalid voxel grid: {exc}") from None
    info = DicomSeriesInfo(
        source=str(source),
        series_instance_uid=uid,
        study_instance_uid=str(first.StudyInstanceUID),
        frame_of_reference_uid=str(first.FrameOfReferenceUID),
        sop_class_uid=str(getattr(first, "SOPClassUID", "") or CT_IMAGE_STORAGE),
        sop_instance_uids=tuple(str(ds.SOPInstanceUID) for _, ds in ordered),
        positions=positions,  # type: ignore[arg-type]
        orientation=_floats(first, "ImageOrientationPatient", 6, first_file),
        pixel_spacing=pixel_spacing,  # type: ignore[arg-type]
        rows=rows,
        columns=columns,
        series_description=str(getattr(first, "SeriesDescription", "") or ""),
        attributes={name: str(getattr(first, name)) for name in STUDY_ATTRIBUTES
                    if getattr(first, name, None) is not None},
    )
    image = np.ascontiguousarray(geometry.to_canonical(file_array), dtype=np.float32)
    logger.info("%s: series %s, %d slices of %d x %d", source, uid, info.num_slices, rows, columns)
    return image, geometry, info

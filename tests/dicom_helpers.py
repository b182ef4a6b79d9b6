"""Test helpers: write a small CT as a DICOM series (SimpleITK/GDCM) and damage series in known ways."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import generate_uid

from sepnet_core.data.phantom import generate_case

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SPACING_XYZ = (1.1, 0.9, 2.5)  # mm; deliberately not the phantom's own spacing (the grid is relabelled)
ORIGIN = (10.0, -20.0, 30.0)
ANGLE_DEG = 200.0  # rotation about z: oblique, and the x and y axes point the negative way (both flip)
INTERCEPT = -1024.0  # stored value = HU - INTERCEPT, as many scanners write it


def rotation_z(degrees: float) -> tuple[float, ...]:
    """ITK direction (row-major 3 x 3) of a rotation by ``degrees`` about the patient z axis."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)


def phantom_ct(seed: int = 0, slices: slice | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A smoke-profile phantom cut to ``slices``, by default 28 slices holding all 22 organs: (HU int16,
    labels)."""
    case = generate_case(seed, profile="smoke")
    if slices is None:  # from the lowest organ's last slice to the highest organ's first, widened to 28
        spans = [np.nonzero((case.label == v).any(axis=(1, 2)))[0] for v in range(1, 23)]
        lo, hi = min(int(s[-1]) for s in spans), max(int(s[0]) for s in spans) + 1
        start = max(0, min(lo - (28 - (hi - lo)) // 2, case.label.shape[0] - 28))
        slices = slice(start, start + 28)
    return case.image[slices].astype(np.int16), case.label[slices].copy()


def sitk_image(array_zyx: np.ndarray, spacing_xyz: Sequence[float] = SPACING_XYZ,
               origin: Sequence[float] = ORIGIN, direction: Sequence[float] | None = None) -> sitk.Image:
    """A SimpleITK image of ``array_zyx`` on the given grid (default direction: :data:`ANGLE_DEG`)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx))
    image.SetSpacing(tuple(float(v) for v in spacing_xyz))
    image.SetOrigin(tuple(float(v) for v in origin))
    image.SetDirection(tuple(float(v) for v in (direction or rotation_z(ANGLE_DEG))))
    return image


def write_ct_series(
    folder: Path,
    hu_zyx: np.ndarray,
    *,
    spacing_xyz: Sequence[float] = SPACING_XYZ,
    origin: Sequence[float] = ORIGIN,
    direction: Sequence[float] | None = None,
    modality: str = "CT",
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_uid: str | None = None,
    description: str = "phantom CT",
) -> list[Path]:
    """Write ``hu_zyx`` (HU, file voxel order) as one DICOM series, one file per slice ``slice_NNN.dcm``.

    Sets Modality, SOP Class (CT Image Storage), Study/Series/Frame-of-Reference UIDs, per-slice
    ImagePositionPatient, ImageOrientationPatient, InstanceNumber and RescaleSlope/Intercept (stored
    values are HU - :data:`INTERCEPT`). Returns the files in slice order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    # GDCM stores (value - intercept) / slope itself when the rescale tags are set: pass HU.
    image = sitk_image(np.asarray(hu_zyx).astype(np.int16), spacing_xyz, origin, direction)
    matrix = np.asarray(image.GetDirection()).reshape(3, 3)
    orientation = "\\".join(f"{v:.10g}" for v in (*matrix[:, 0], *matrix[:, 1]))
    study_uid, series_uid, frame_uid = study_uid or generate_uid(), series_uid or generate_uid(), \
        frame_uid or generate_uid()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    files = []
    for k in range(image.GetDepth()):
        slice_image = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0016": CT_IMAGE_STORAGE, "0008|0018": generate_uid(), "0008|0060": modality,
            "0008|103e": description, "0010|0010": "Phantom^Zero", "0010|0020": "PHANTOM0",
            "0020|000d": study_uid, "0020|000e": series_uid, "0020|0052": frame_uid,
            "0020|0010": "1", "0020|0011": "1", "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.10g}" for v in position), "0020|0037": orientation,
            "0018|0050": f"{spacing_xyz[2]:g}", "0028|1052": f"{INTERCEPT:g}", "0028|1053": "1",
        }
        for key, value in tags.items():
            slice_image.SetMetaData(key, value)
        path = folder / f"slice_{k:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(slice_image)
        files.append(path)
    return files


def compress_series(files: Sequence[Path], syntax: str) -> None:
    """Re-encode each file's pixel data in place in a compressed transfer syntax.

    ``syntax``: a name of ``gdcm.TransferSyntax`` (``JPEGLosslessProcess14_1``, ``JPEGLSLossless``,
    ``JPEG2000Lossless``, ``RLELossless``), transcoded with GDCM; or ``"pydicom-RLE"``: RLE Lossless with
    pydicom's own encoder.
    """
    if syntax == "pydicom-RLE":
        from pydicom.uid import RLELossless

        for path in files:
            ds = pydicom.dcmread(path)
            ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
            ds.save_as(path)
        return
    import gdcm

    for path in files:
        reader = gdcm.ImageReader()
        reader.SetFileName(str(path))
        if not reader.Read():
            raise OSError(f"{path}: GDCM cannot read it")
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise OSError(f"{path}: GDCM cannot encode it as {syntax}")
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(path))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise OSError(f"{path}: GDCM cannot write it")


def edit_series(files: Sequence[Path], **attributes) -> None:
    """Set DICOM attributes (keyword=value) in every file, in place."""
    for path in files:
        ds = pydicom.dcmread(path)
        for key, value in attributes.items():
            setattr(ds, key, value)
        ds.save_as(path)


def shift_slice(path: Path, mm: float) -> None:
    """Move one slice ``mm`` along z (its ImagePositionPatient), in place."""
    ds = pydicom.dcmread(path)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [x, y, round(z + mm, 4)]
    ds.save_as(path)


def slice_headers(folder: Path) -> dict[str, pydicom.Dataset]:
    """Headers of the CT slices in ``folder`` by SOPInstanceUID."""
    headers = {}
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        headers[str(ds.SOPInstanceUID)] = ds
    return headers


def rasterise_rtstruct(rtstruct: pydicom.Dataset, ct_folder: Path) -> dict[int, dict[str, np.ndarray]]:
    """Fill every ROI's contours on the CT slices they reference, independently of sepnet_core.

    Each contour's points (mm) are mapped to (row, column) of its referenced slice with that slice's
    ImagePositionPatient, ImageOrientationPatient and PixelSpacing, checked to lie in the slice plane
    (within 1 um), and filled at pixel centres with the even-odd rule (nested contours XOR, as planning
    systems do). Returns ``{ROI number: {SOPInstanceUID: bool (rows, columns) mask}}``.
    """
    from matplotlib.path import Path as PolygonPath

    headers = slice_headers(ct_folder)
    out: dict[int, dict[str, np.ndarray]] = {}
    for roi in rtstruct.ROIContourSequence:
        masks = out.setdefault(int(roi.ReferencedROINumber), {})
        for contour in roi.ContourSequence:
            assert contour.ContourGeometricType == "CLOSED_PLANAR"
            uid = str(contour.ContourImageSequence[0].ReferencedSOPInstanceUID)
            ds = headers[uid]
            points = np.asarray(contour.ContourData, dtype=np.float64).reshape(-1, 3)
            assert len(points) == int(contour.NumberOfContourPoints)
            orient = np.asarray(ds.ImageOrientationPatient, dtype=np.float64)
            row_cos, col_cos = orient[:3], orient[3:]
            offset = points - np.asarray(ds.ImagePositionPatient, dtype=np.float64)
            assert np.abs(offset @ np.cross(row_cos, col_cos)).max() < 1e-3, "contour not in its slice plane"
            row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
            polygon = np.stack([offset @ col_cos / row_spacing, offset @ row_cos / col_spacing], axis=1)
            rows, cols = int(ds.Rows), int(ds.Columns)
            centres = np.stack(np.mgrid[:rows, :cols], axis=-1).reshape(-1, 2).astype(np.float64)
            inside = PolygonPath(polygon).contains_points(centres).reshape(rows, cols)
            masks[uid] = masks.get(uid, np.zeros((rows, cols), bool)) ^ inside
    return out


def slice_index(image: sitk.Image, position: Sequence[float]) -> int:
    """Index k of the slice of ``image`` (a NIfTI output) whose voxel (0, 0, k) lies at ``position``."""
    index = np.asarray(image.TransformPhysicalPointToContinuousIndex([float(v) for v in position]))
    assert np.abs(index[:2]).max() < 1e-3 and abs(index[2] - round(index[2])) < 1e-3, index
    return int(round(index[2]))


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """Run dicom3tools' validator: (error lines, warning lines). Skips the test when it is not installed,
    except under CI (environment variable CI set), where it fails: install the Debian package dicom3tools."""
    import os
    import shutil
    import subprocess

    import pytest

    if shutil.which("dciodvfy") is None:
        message = "dciodvfy not found: install dicom3tools (apt-get install dicom3tools, or make system-deps)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    lines = (result.stdout + result.stderr).splitlines()
    return [ln for ln in lines if "Error" in ln], [ln for ln in lines if ln.startswith("Warning")]

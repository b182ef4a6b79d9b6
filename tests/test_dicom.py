"""Reading DICOM CT series (sepnet_core.data.dicom): geometry as ITK reads it, zip input, one-line errors."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_helpers import (
    INTERCEPT,
    compress_series,
    edit_series,
    phantom_ct,
    rotation_z,
    shift_slice,
    write_ct_series,
)

from sepnet_core.data.dicom import list_series, read_dicom_series
from sepnet_core.data.inputs import read_input
from sepnet_core.errors import SepNetInputError

# ITK directions (row-major, columns = index axes x, y, z) of the acquisitions tested.
DIRECTIONS = {
    "oblique_200deg": rotation_z(200.0),  # oblique axial; x and y point the negative way
    "identity": (1, 0, 0, 0, 1, 0, 0, 0, 1),
    "z_descending": (1, 0, 0, 0, 1, 0, 0, 0, -1),  # slices written head to feet: the reader re-sorts them
    "coronal": (1, 0, 0, 0, 0, 1, 0, -1, 0),  # rows run feet-wards, slices step anterior-posterior
}


@pytest.fixture(scope="module")
def ct():
    hu, _ = phantom_ct(slices=slice(44, 52))  # 8 slices of 64 x 64
    return hu


def sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def one_line_error(excinfo, *fragments: str) -> str:
    message = str(excinfo.value)
    assert len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_series_is_read_on_the_grid_itk_reads(ct, tmp_path, name):
    files = write_ct_series(tmp_path / "ct", ct, direction=DIRECTIONS[name])
    reference = sitk_series(tmp_path / "ct")
    image, geometry, info = read_dicom_series(tmp_path / "ct")
    file_grid = geometry.file_geometry
    np.testing.assert_allclose(file_grid.spacing_mm[::-1], reference.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(file_grid.origin, reference.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(file_grid.direction, reference.GetDirection(), atol=1e-6)
    # Voxels: stored + intercept (-1024) must give the HU written, in ITK's slice order.
    first = pydicom.dcmread(files[0])
    assert float(first.RescaleIntercept) == INTERCEPT and first.pixel_array.min() >= 0 > ct.min()
    assert image.dtype == np.float32
    np.testing.assert_array_equal(geometry.to_file(image), sitk.GetArrayFromImage(reference))
    written = ct if name != "z_descending" else ct[::-1]
    np.testing.assert_array_equal(geometry.to_file(image), written)
    # The slice references follow the same order: slice k's SOP instance sits at voxel (0, 0, k).
    for k in (0, len(files) - 1):
        np.testing.assert_allclose(info.positions[k], reference.TransformIndexToPhysicalPoint((0, 0, k)),
                                   atol=1e-6)
        uid = pydicom.dcmread(files[k if name != "z_descending" else len(files) - 1 - k]).SOPInstanceUID
        assert info.sop_instance_uids[k] == uid
    assert (info.rows, info.columns, info.num_slices) == (64, 64, 8)
    assert info.attributes["PatientID"] == "PHANTOM0"


def test_canonical_orientation_of_a_coronal_series_is_axial(ct, tmp_path):
    write_ct_series(tmp_path / "ct", ct, direction=DIRECTIONS["coronal"])
    image, geometry, _ = read_dicom_series(tmp_path / "ct")
    # Coronal stack: file (slices=y, rows=z reversed, columns=x) -> canonical (z, y, x).
    assert image.shape == (64, 8, 64)
    np.testing.assert_allclose(geometry.direction, (1, 0, 0, 0, 1, 0, 0, 0, 1), atol=1e-9)
    assert geometry.spacing_mm == pytest.approx((0.9, 2.5, 1.1))


def test_zip_reads_like_the_folder_and_leaves_no_temporary_files(ct, tmp_path, monkeypatch):
    files = write_ct_series(tmp_path / "ct", ct)
    archive = tmp_path / "ct.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in files:
            z.write(f, f"patient/series/{f.name}")
        z.writestr("patient/README.txt", "not DICOM")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    from_zip = read_dicom_series(archive)
    from_folder = read_dicom_series(tmp_path / "ct")
    np.testing.assert_array_equal(from_zip[0], from_folder[0])
    assert from_zip[1] == from_folder[1]
    assert from_zip[2].sop_instance_uids == from_folder[2].sop_instance_uids
    assert list(scratch.iterdir()) == []
    volume = read_input(archive)
    assert volume.kind == "dicom-zip"
    assert volume.dicom.series_instance_uid == from_folder[2].series_instance_uid


def test_several_series_need_a_choice(ct, tmp_path):
    a = write_ct_series(tmp_path / "ct" / "a", ct, description="first")
    write_ct_series(tmp_path / "ct" / "b", ct + 5, description="second")
    uids = sorted(str(pydicom.dcmread(d / "slice_000.dcm").SeriesInstanceUID)
                  for d in (tmp_path / "ct" / "a", tmp_path / "ct" / "b"))
    with pytest.raises(SepNetInputError) as excinfo:
        read_dicom_series(tmp_path / "ct")
    one_line_error(excinfo, str(tmp_path / "ct"), "2 DICOM series", "--series", *uids, "'first'")
    chosen = str(pydicom.dcmread(a[0]).SeriesInstanceUID)
    image, _, info = read_dicom_series(tmp_path / "ct", series_uid=chosen)
    assert info.series_instance_uid == chosen and info.series_description == "first"
    assert [s.description for s in list_series(tmp_path / "ct")] == \
        [("first" if u == chosen else "second") for u in uids]
    with pytest.raises(SepNetInputError) as excinfo:
        read_dicom_series(tmp_path / "ct", series_uid="1.2.3.4")
    one_line_error(excinfo, "no series with UID 1.2.3.4", *uids)


def damage(name: str, files: list[Path], folder: Path) -> Path:
    """Apply one defect to a written series; returns the input path to read."""
    if name == "not_ct":
        edit_series(files, Modality="MR")
    elif name == "missing_slice":
        files[3].unlink()
    elif name == "uneven_spacing":
        for f in files[4:]:
            shift_slice(f, 0.7)
    elif name == "duplicate_position":
        shift_slice(files[3], -2.5)
    elif name == "mixed_sizes":
        edit_series(files[2:3], Rows=32)
    elif name == "tilted":
        ds = pydicom.dcmread(files[5])
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x + 1.5, y, z]
        ds.save_as(files[5])
    elif name == "single_slice":
        for f in files[1:]:
            f.unlink()
    elif name == "empty_folder":
        for f in files:
            f.unlink()
        (folder / "notes.txt").write_text("no images here")
    elif name == "no_frame_of_reference":
        edit_series(files, FrameOfReferenceUID="")
    return folder


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("not_ct", ["modality MR", "CT only"]),
        ("missing_slice", ["misses 1 slice", "slice_002.dcm", "slice_004.dcm", "5.000 mm", "2.500 mm"]),
        ("uneven_spacing", ["inconsistent slice spacing", "2.500 to 3.200 mm"]),
        ("duplicate_position", ["two slices at the same position"]),
        ("mixed_sizes", ["mixes image sizes", "slice_002.dcm"]),
        ("tilted", ["not stacked along the slice normal"]),
        ("single_slice", ["single slice"]),
        ("empty_folder", ["no DICOM files found"]),
        ("no_frame_of_reference", ["FrameOfReferenceUID is missing"]),
    ],
)
def test_bad_series_fail_with_one_line_naming_the_input(ct, tmp_path, name, fragments):
    files = write_ct_series(tmp_path / "ct", ct)
    source = damage(name, files, tmp_path / "ct")
    with pytest.raises(SepNetInputError) as excinfo:
        read_dicom_series(source)
    message = one_line_error(excinfo, *fragments)
    assert str(tmp_path / "ct") in message


@pytest.mark.parametrize("member", ["../evil.dcm", "/abs/evil.dcm", "a/../../evil.dcm", "C:/evil.dcm"])
def test_zip_members_outside_the_folder_are_refused_before_extraction(ct, tmp_path, monkeypatch, member):
    files = write_ct_series(tmp_path / "ct", ct)
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(files[0], "ok/slice_000.dcm")
        z.writestr(zipfile.ZipInfo(member), b"payload")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(SepNetInputError) as excinfo:
        read_dicom_series(archive)
    one_line_error(excinfo, str(archive), repr(member), "refusing the archive")
    assert not (tmp_path / "evil.dcm").exists() and list(scratch.iterdir()) == []


def test_a_damaged_zip_fails_in_one_line(tmp_path):
    archive = tmp_path / "ct.zip"
    archive.write_bytes(b"PK\x03\x04 this is not a complete archive")
    with pytest.raises(SepNetInputError) as excinfo:
        read_dicom_series(archive)
    one_line_error(excinfo, str(archive), "not a readable zip")


def test_rescale_slope_and_intercept_give_hu(ct, tmp_path):
    files = write_ct_series(tmp_path / "ct", ct)
    ds = pydicom.dcmread(files[0])
    stored = ds.pixel_array.astype(np.int32)
    even = stored - stored % 2  # halve exactly
    ds.PixelData = (even // 2).astype(np.int16).tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = 2, INTERCEPT
    ds.save_as(files[0])
    image, geometry, _ = read_dicom_series(tmp_path / "ct")
    np.testing.assert_array_equal(geometry.to_file(image)[0], even + INTERCEPT)


# ------------------------------------------------------------------------------------ compressed pixel data
COMPRESSED = {  # how the test encodes -> the transfer syntax UID the files must then carry
    "JPEGLosslessProcess14_1": "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1, the common CT export
    "JPEGLSLossless": "1.2.840.10008.1.2.4.80",
    "JPEG2000Lossless": "1.2.840.10008.1.2.4.90",
    "RLELossless": "1.2.840.10008.1.2.5",
    "pydicom-RLE": "1.2.840.10008.1.2.5",  # pydicom's own RLE encoder, not GDCM's
}


@pytest.mark.parametrize("syntax", list(COMPRESSED))
def test_compressed_series_reads_like_the_uncompressed_one(ct, tmp_path, syntax):
    files = write_ct_series(tmp_path / "ct", ct)
    plain, plain_geometry, plain_info = read_dicom_series(tmp_path / "ct")
    compress_series(files, syntax)
    for f in files:
        assert pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID == COMPRESSED[syntax]
    image, geometry, info = read_dicom_series(tmp_path / "ct")
    np.testing.assert_array_equal(image, plain)  # lossless: the very HU written
    np.testing.assert_array_equal(geometry.to_file(image), ct)
    assert geometry == plain_geometry and info.sop_instance_uids == plain_info.sop_instance_uids


def test_transfer_syntax_without_a_decoder_is_one_line(ct, tmp_path):
    files = write_ct_series(tmp_path / "ct", ct)
    ds = pydicom.dcmread(files[3])
    ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML  # video: pydicom has no decoder at all
    ds.PixelData = pydicom.encaps.encapsulate([ds.PixelData])  # one fragment, as a compressed file holds
    ds["PixelData"].VR = "OB"
    ds.save_as(files[3], enforce_file_format=True)
    with pytest.raises(SepNetInputError) as excinfo:
        read_dicom_series(tmp_path / "ct")
    message = one_line_error(excinfo, files[3].name, "cannot decode the pixel data", "MPEG2", "not supported",
                             "JPEG-LS")
    assert message.startswith(str(files[3]))

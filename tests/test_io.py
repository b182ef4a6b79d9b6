"""Tests of NIfTI reading, validation, orientation and writing (sepnet_core.data.io, .geometry)."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from sepnet_core.data import io
from sepnet_core.data._nifti import nifti_layout
from sepnet_core.data.io import (
    Case,
    Geometry,
    InputNotFoundError,
    SepNetIntensityWarning,
    check_name,
    list_cases,
    read_case,
    read_image,
    read_label,
    write_image,
)
from sepnet_core.errors import SepNetInputError

SPACING_XYZ = (0.75, 0.8, 3.0)
ORIGIN = (-100.5, 20.25, -30.0)
# A sagittal acquisition: index i runs head->feet (-z), j runs back->front (-y), k runs right->left (+x).
SAGITTAL = (0.0, 0.0, 1.0,
            0.0, -1.0, 0.0,
            -1.0, 0.0, 0.0)


def ct(shape=(4, 5, 6), seed=0) -> np.ndarray:
    """A small int16 'CT' with air (-1000 HU) and tissue."""
    values = np.random.default_rng(seed).integers(-1000, 1500, size=shape).astype(np.int16)
    values.flat[0] = -1000
    return values


def save(path: Path, array: np.ndarray, spacing=SPACING_XYZ, origin=ORIGIN, direction=None) -> Path:
    """Write ``array`` (file order z, y, x) with SimpleITK; returns ``path``."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path), True)
    return path


def assert_same_grid(a: sitk.Image, b: sitk.Image) -> None:
    """Exact equality of the stored spacing, origin and direction of two images."""
    assert a.GetSpacing() == b.GetSpacing()
    assert a.GetOrigin() == b.GetOrigin()
    assert a.GetDirection() == b.GetDirection()


def make_case(root: Path, name: str, label: np.ndarray | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    save(folder / "data.nii.gz", ct())
    if label is not None:
        save(folder / "label.nii.gz", label)
    return folder


# ------------------------------------------------------------------------------------------ round trips
def test_read_image_values_and_geometry(tmp_path: Path) -> None:
    array = ct()
    image, geometry = read_image(save(tmp_path / "data.nii.gz", array))
    assert image.dtype == np.float32 and image.shape == (4, 5, 6)
    np.testing.assert_array_equal(image, array.astype(np.float32))
    assert geometry.shape == (4, 5, 6)
    np.testing.assert_allclose(geometry.spacing_mm, SPACING_XYZ[::-1], rtol=1e-6)
    assert geometry.origin == ORIGIN
    assert geometry.is_canonical_file


@pytest.mark.parametrize(("dtype", "stored"), [(None, sitk.sitkInt16), ("int16", sitk.sitkInt16),
                                               ("float32", sitk.sitkFloat32)])
def test_write_back_is_voxel_and_geometry_exact(tmp_path: Path, dtype, stored) -> None:
    source = save(tmp_path / "data.nii.gz", ct())
    image, geometry = read_image(source)
    array = image.astype(np.int16) if dtype is None else image
    out = write_image(tmp_path / "copy.nii.gz", array, geometry, dtype=dtype)
    a, b = sitk.ReadImage(str(source)), sitk.ReadImage(str(out))
    assert b.GetPixelID() == stored
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    assert_same_grid(a, b)


def _orientations():
    """All 48 axis permutations x flips as ITK direction tuples."""
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = np.zeros((3, 3))
            for column, (row, sign) in enumerate(zip(perm, signs, strict=True)):
                matrix[row, column] = sign
            yield tuple(matrix.reshape(-1).tolist())


@pytest.mark.parametrize("direction", list(_orientations()))
def test_any_orientation_is_canonical_and_round_trips(tmp_path: Path, direction) -> None:
    array = ct((3, 4, 5))
    source = save(tmp_path / "data.nii.gz", array, direction=direction)
    image, geometry = read_image(source)
    reference = sitk.DICOMOrient(sitk.ReadImage(str(source)), "LPS")
    np.testing.assert_array_equal(image, sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(geometry.direction, np.eye(3).reshape(-1), atol=1e-6)
    np.testing.assert_allclose(geometry.origin, reference.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(geometry.spacing_mm, reference.GetSpacing()[::-1], rtol=1e-6)
    out = write_image(tmp_path / "pred.nii.gz", image.astype(np.int16), geometry)
    a, b = sitk.ReadImage(str(source)), sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(b), array)
    assert_same_grid(a, b)


def test_sagittal_file_is_returned_axial_superior_last(tmp_path: Path) -> None:
    # SAGITTAL: ITK index i points to -z (feet), j to -y (front), k to +x (left); the numpy array of
    # the file is (k, j, i). Mark the slab i = 0, which is the most superior one.
    array = np.full((5, 4, 3), -1000, dtype=np.int16)
    array[:, :, 0] = 500
    image, geometry = read_image(save(tmp_path / "sag.nii.gz", array, spacing=(2.0, 1.0, 0.5),
                                      direction=SAGITTAL))
    assert image.shape == (3, 4, 5)  # z from file axis i, y from j, x from k
    assert geometry.spacing_mm == (2.0, 1.0, 0.5)
    assert (image[-1] == 500).all() and (image[:-1] == -1000).all()  # superior = highest z index
    assert geometry.file_axes == (2, 1, 0) and geometry.file_flips == (True, True, False)


def test_label_round_trip_uint8(tmp_path: Path) -> None:
    label = (np.arange(4 * 5 * 6).reshape(4, 5, 6) % 23).astype(np.uint8)
    source = save(tmp_path / "label.nii.gz", label, direction=SAGITTAL)
    image_geometry = read_image(save(tmp_path / "data.nii.gz", ct(), direction=SAGITTAL))[1]
    read = read_label(source, image_geometry)
    assert read.dtype == np.uint8
    out = write_image(tmp_path / "pred.nii.gz", read, image_geometry)
    stored = sitk.ReadImage(str(out))
    assert stored.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(sitk.GetArrayFromImage(stored), label)


def test_read_case_with_and_without_label(tmp_path: Path) -> None:
    label = np.zeros((4, 5, 6), dtype=np.uint8)
    label[1, 2, 3] = 22
    case = read_case(make_case(tmp_path, "case_7", label=label))
    assert case.case_id == "case_7" and case.label is not None and case.label[1, 2, 3] == 22
    assert case.image.dtype == np.float32 and case.geometry.shape == (4, 5, 6)
    bare = read_case(make_case(tmp_path, "case_8"))
    assert bare.label is None


def test_read_case_dot_path_uses_folder_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_case(tmp_path, "p01")
    monkeypatch.chdir(folder)
    assert read_case(".").case_id == "p01"


# ------------------------------------------------------------------------------------------ validation
def _text(p: Path) -> Path:
    p.write_text("this is not an image\n")
    return p


def _truncated(p: Path, compress: bool) -> Path:
    full = p.with_name("full" + ("".join(p.suffixes)))
    image = sitk.GetImageFromArray(ct((8, 16, 16)))
    sitk.WriteImage(image, str(full), compress)
    data = full.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.8)])
    return p


def _nib(p: Path, array: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(p))
    return p


def _with_values(p: Path, value: float) -> Path:
    array = ct().astype(np.float32)
    array[1, 1, 1] = value
    return save(p, array)


def _label_case(tmp: Path, label: np.ndarray, **label_geometry) -> Path:
    folder = make_case(tmp, "case")
    save(folder / "label.nii.gz", label, **label_geometry)
    return folder


LABEL_OK = np.zeros((4, 5, 6), dtype=np.uint8)
TILTED = (np.cos(0.01), -np.sin(0.01), 0.0, np.sin(0.01), np.cos(0.01), 0.0, 0.0, 0.0, 1.0)  # about z


def _empty(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def _folder(p: Path) -> Path:
    p.mkdir(parents=True)
    return p


def _vector(p: Path) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5, 3), np.uint8), isVector=True), str(p))
    return p


# (id, build(tmp) -> action that must raise, file name the message must contain, message fragment)
INVALID = [
    ("text_named_nii_gz", lambda t: lambda: read_image(_text(t / "ct.nii.gz")), "ct.nii.gz",
     "not a readable"),
    ("empty_file", lambda t: lambda: read_image(_empty(t / "ct.nii.gz")), "ct.nii.gz", "empty"),
    ("truncated_gz", lambda t: lambda: read_image(_truncated(t / "cut.nii.gz", True)), "cut.nii.gz",
     "truncated"),
    ("truncated_nii", lambda t: lambda: read_image(_truncated(t / "cut.nii", False)), "cut.nii", "truncated"),
    ("image_2d", lambda t: lambda: read_image(_nib(t / "flat.nii.gz", np.zeros((5, 6), np.int16))),
     "flat.nii.gz", "2D"),
    ("image_4d", lambda t: lambda: read_image(_nib(t / "time.nii.gz", np.zeros((5, 6, 4, 2), np.int16))),
     "time.nii.gz", "4D"),
    ("vector_image", lambda t: lambda: read_image(_vector(t / "rgb.nii.gz")), "rgb.nii.gz",
     "values per voxel"),
    ("nan", lambda t: lambda: read_image(_with_values(t / "nan.nii.gz", np.nan)), "nan.nii.gz", "non-finite"),
    ("inf", lambda t: lambda: read_image(_with_values(t / "inf.nii.gz", -np.inf)), "inf.nii.gz",
     "non-finite"),
    ("nan_mha", lambda t: lambda: read_image(_with_values(t / "nan.mha", np.nan)), "nan.mha", "non-finite"),
    ("missing_file", lambda t: lambda: read_image(t / "nope.nii.gz"), "nope.nii.gz", "does not exist"),
    ("folder_as_file", lambda t: lambda: read_image(_folder(t / "d.nii.gz")), "d.nii.gz", "not a file"),
    ("label_23", lambda t: lambda: read_case(_label_case(t, LABEL_OK + 23)), "label.nii.gz", "outside 0..22"),
    ("label_negative", lambda t: lambda: read_case(_label_case(t, LABEL_OK.astype(np.int16) - 1)),
     "label.nii.gz", "outside 0..22"),
    ("label_fraction", lambda t: lambda: read_case(_label_case(t, LABEL_OK.astype(np.float32) + 0.5)),
     "label.nii.gz", "whole numbers"),
    ("label_nan", lambda t: lambda: read_case(_label_case(t, LABEL_OK.astype(np.float32) + np.nan)),
     "label.nii.gz", "non-finite"),
    ("label_shape", lambda t: lambda: read_case(_label_case(t, np.zeros((4, 5, 7), np.uint8))),
     "label.nii.gz", "shape"),
    ("label_spacing", lambda t: lambda: read_case(_label_case(t, LABEL_OK, spacing=(0.75, 0.8, 2.5))),
     "label.nii.gz", "spacing"),
    ("label_origin", lambda t: lambda: read_case(_label_case(t, LABEL_OK, origin=(0.0, 0.0, 0.0))),
     "label.nii.gz", "origin"),
    ("label_direction", lambda t: lambda: read_case(_label_case(t, LABEL_OK, direction=TILTED)),
     "label.nii.gz", "direction"),
    ("case_missing_data", lambda t: lambda: read_case(_folder(t / "c1")), "data.nii.gz", "missing"),
    ("case_missing_label", lambda t: lambda: read_case(make_case(t, "c2"), require_label=True),
     "label.nii.gz", "missing"),
    ("case_missing_folder", lambda t: lambda: read_case(t / "c3"), "c3", "does not exist"),
    ("case_dotdot", lambda t: lambda: read_case(t / "a" / ".."), "..", "single folder name"),
    ("list_missing_root", lambda t: lambda: list_cases(t / "dataset", "train"), "dataset", "does not exist"),
    ("list_missing_split", lambda t: lambda: list_cases(_folder(t / "d" / "test").parent, "train"), "train",
     "does not exist"),
    ("list_empty_split", lambda t: lambda: list_cases(_folder(t / "d" / "train").parent, "train"), "train",
     "no case folders"),
    ("list_split_traversal", lambda t: lambda: list_cases(t, "../etc"), "../etc", "path separator"),
    ("list_split_dotdot", lambda t: lambda: list_cases(t, ".."), "..", "single folder name"),
]


@pytest.mark.parametrize(("build", "name", "fragment"), [row[1:] for row in INVALID],
                         ids=[row[0] for row in INVALID])
def test_invalid_inputs_raise_one_line_naming_the_file(tmp_path: Path, build, name, fragment) -> None:
    action = build(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SepNetIntensityWarning)
        with pytest.raises(SepNetInputError) as caught:
            action()
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    assert name in message
    assert fragment in message


def test_missing_inputs_are_also_file_not_found(tmp_path: Path) -> None:
    for action in (lambda: read_image(tmp_path / "x.nii.gz"), lambda: read_case(tmp_path / "x"),
                   lambda: list_cases(tmp_path / "x", "train")):
        with pytest.raises(FileNotFoundError):
            action()
    assert issubclass(InputNotFoundError, SepNetInputError)


def test_complete_nifti2_is_accepted(tmp_path: Path) -> None:
    array = ct()
    path = tmp_path / "v2.nii"
    nib.save(nib.Nifti2Image(array, np.eye(4)), str(path))
    layout = nifti_layout(path.read_bytes()[:544])
    assert layout is not None and layout.data_end == path.stat().st_size and layout.float_dtype is None
    try:
        image, _ = read_image(path)
    except SepNetInputError as exc:  # an ITK build without NIfTI-2 reports it in one line
        assert "\n" not in str(exc)
    else:
        assert image.shape == array.T.shape  # nibabel arrays are (x, y, z)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize(("dtype", "checked"), [(np.int16, None), (np.float32, "f4"), (np.float64, "f8"),
                                                (np.complex64, "f4")])
def test_nifti_layout_of_files_nibabel_writes(tmp_path: Path, version, endian, dtype, checked) -> None:
    # The header, read with nibabel, must place the voxels exactly where nibabel wrote them: the file
    # ends with the last voxel; floating-point data (complex: its parts) is checked in the file's byte order.
    image_class = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    array = ct().astype(dtype)
    image = image_class(array, np.eye(4), dtype=dtype)
    image = image_class(array, np.eye(4), header=image.header.as_byteswapped(endian))
    path = tmp_path / "v.nii"
    nib.save(image, str(path))
    layout = nifti_layout(path.read_bytes()[:544])
    assert layout is not None and layout.data_end == path.stat().st_size
    assert layout.data_end - layout.data_start == array.nbytes
    assert layout.float_dtype == (None if checked is None else np.dtype(endian + checked))


@pytest.mark.parametrize("endian", ["<", ">"])
def test_nan_is_found_in_either_byte_order(tmp_path: Path, endian) -> None:
    array = ct().astype(np.float64)
    array[1, 2, 3] = np.nan
    array[0, 0, 0] = -np.inf
    image = nib.Nifti1Image(array, np.eye(4))
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(array, np.eye(4), header=image.header.as_byteswapped(endian)), str(path))
    with pytest.raises(SepNetInputError, match="contains 2 non-finite voxel value") as caught:
        read_image(path)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize("head", [b"", b"\x00" * 600, b"n+1\x00" * 150])
def test_nifti_layout_is_none_for_other_bytes(head: bytes) -> None:
    assert nifti_layout(head) is None


# ------------------------------------------------------------------------------------------ HU warnings
@pytest.mark.parametrize(("values", "fragment"), [
    (np.linspace(0.0, 1.0, 120, dtype=np.float32), "normalised"),
    (np.linspace(0.0, 4095.0, 120, dtype=np.float32), "-200 HU"),
    (np.full(120, 7.0, dtype=np.float32), "same value"),
])
def test_implausible_intensities_warn_but_read(tmp_path: Path, values: np.ndarray, fragment: str) -> None:
    path = save(tmp_path / "odd.nii.gz", values.reshape(4, 5, 6))
    with pytest.warns(SepNetIntensityWarning, match=fragment) as record:
        image, _ = read_image(path)
    assert "odd.nii.gz" in str(record[0].message)
    np.testing.assert_allclose(image.reshape(-1), values)


def test_plausible_ct_does_not_warn(tmp_path: Path) -> None:
    path = save(tmp_path / "ok.nii.gz", ct())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(path)


# ------------------------------------------------------------------------------------------ writing
def test_write_refuses_overwrite_and_leaves_no_temporaries(tmp_path: Path) -> None:
    geometry = Geometry(shape=(2, 3, 4), spacing_mm=(3.0, 1.0, 1.0))
    target = tmp_path / "pred.nii.gz"
    write_image(target, np.ones((2, 3, 4), np.uint8), geometry)
    before = target.read_bytes()
    with pytest.raises(FileExistsError, match="pred.nii.gz"):
        write_image(target, np.zeros((2, 3, 4), np.uint8), geometry)
    assert target.read_bytes() == before
    write_image(target, np.zeros((2, 3, 4), np.uint8), geometry, overwrite=True)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(target))).max() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.nii.gz"]


def test_write_failing_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_writer(image, path, *args, **kwargs):
        Path(path).write_bytes(b"\x1f\x8b partial")
        raise RuntimeError("Exception thrown in SimpleITK WriteImage:\nsitk::ERROR: disk full")

    monkeypatch.setattr(io.sitk, "WriteImage", broken_writer)
    geometry = Geometry(shape=(2, 3, 4), spacing_mm=(3.0, 1.0, 1.0))
    with pytest.raises(OSError, match="disk full"):
        write_image(tmp_path / "pred.nii.gz", np.ones((2, 3, 4), np.uint8), geometry)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("array", "dtype", "expected"), [
    (np.array([0, 1, 22], np.uint8), None, np.array([0, 1, 22], np.uint8)),
    (np.array([True, False, True]), None, np.array([1, 0, 1], np.uint8)),
    (np.array([-1000, 0, 3000], np.int32), None, np.array([-1000, 0, 3000], np.int16)),
    (np.array([-1000.4, 0.6, 2999.7], np.float64), "int16", np.array([-1000, 1, 3000], np.int16)),
    (np.array([0.25, 0.5, 1.0], np.float64), None, np.array([0.25, 0.5, 1.0], np.float32)),
    (np.array([0, 1, 2], np.int64), np.uint8, np.array([0, 1, 2], np.uint8)),
])
def test_write_dtypes(tmp_path: Path, array: np.ndarray, dtype, expected: np.ndarray) -> None:
    geometry = Geometry(shape=(1, 1, 3), spacing_mm=(1.0, 1.0, 1.0))
    path = write_image(tmp_path / "a.nii.gz", array.reshape(1, 1, 3), geometry, dtype=dtype)
    stored = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).reshape(-1)
    assert stored.dtype == expected.dtype
    np.testing.assert_array_equal(stored, expected)


@pytest.mark.parametrize(("name", "array", "dtype", "fragment"), [
    ("a.png", np.zeros((1, 1, 3), np.uint8), None, "must end with"),
    ("a.nii.gz", np.zeros((1, 1, 4), np.uint8), None, "shape"),
    ("a.nii.gz", np.full((1, 1, 3), 300), "uint8", "do not fit"),
    ("a.nii.gz", np.full((1, 1, 3), np.nan), "float32", "NaN"),
    ("a.nii.gz", np.zeros((1, 1, 3)), "float64", "valid"),
])
def test_write_rejects_bad_arguments(tmp_path: Path, name: str, array: np.ndarray, dtype, fragment) -> None:
    geometry = Geometry(shape=(1, 1, 3), spacing_mm=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=fragment):
        write_image(tmp_path / name, array, geometry, dtype=dtype)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ listing, names
def test_list_cases_natural_order_skips_non_cases(tmp_path: Path) -> None:
    split = tmp_path / "train"
    for name in ["10", "2", "case_b", "case_a"]:
        make_case(split, name)
    (split / "notes").mkdir()  # no data.nii.gz
    (split / ".ipynb_checkpoints").mkdir()
    (split / "readme.txt").write_text("x")
    assert [p.name for p in list_cases(tmp_path, "train")] == ["2", "10", "case_a", "case_b"]


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "x\n", " lead", "trail "])
def test_check_name_rejects_unsafe(name: str) -> None:
    with pytest.raises(SepNetInputError, match="folder name"):
        check_name(name)


def test_case_validation() -> None:
    geometry = Geometry(shape=(1, 2, 2), spacing_mm=(1.0, 1.0, 1.0))
    image = np.zeros((1, 2, 2), np.int16)
    case = Case("p1", image, np.ones((1, 2, 2), np.int64), geometry)
    assert case.image.dtype == np.float32 and case.label.dtype == np.uint8
    with pytest.raises(SepNetInputError, match="separator"):
        Case("../p1", image, None, geometry)
    with pytest.raises(ValueError, match="0..22"):
        Case("p1", image, np.full((1, 2, 2), 23), geometry)
    with pytest.raises(ValueError, match="geometry.shape"):
        Case("p1", np.zeros((2, 2, 2)), None, geometry)


# ------------------------------------------------------------------------------------------ Geometry
def test_geometry_dict_round_trip_and_unknown_key() -> None:
    geometry = Geometry(shape=(3, 4, 5), spacing_mm=(3.0, 0.5, 0.5), origin=(1.0, 2.0, 3.0),
                        direction=(0, 0, 1, 0, 1, 0, -1, 0, 0), file_axes=(2, 1, 0),
                        file_flips=(True, False, False))
    assert Geometry.from_dict(geometry.to_dict()) == geometry
    with pytest.raises(ValueError, match="valid keys"):
        Geometry.from_dict({**geometry.to_dict(), "affine": 1})


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"shape": (0, 4, 5)}, "shape"),
    ({"shape": (4, 5)}, "shape"),
    ({"spacing_mm": (1.0, -1.0, 1.0)}, "spacing_mm"),
    ({"spacing_mm": (1.0, float("nan"), 1.0)}, "spacing_mm"),
    ({"origin": (0.0, float("inf"), 0.0)}, "finite"),
    ({"file_axes": (0, 0, 1)}, "permutation"),
])
def test_geometry_rejects_bad_fields(kwargs: dict, fragment: str) -> None:
    base = {"shape": (3, 4, 5), "spacing_mm": (1.0, 1.0, 1.0)}
    with pytest.raises(ValueError, match=fragment):
        Geometry(**{**base, **kwargs})


@pytest.mark.parametrize(("change", "matches"), [
    ({"origin": (1e-5, 0.0, 0.0)}, True),
    ({"origin": (1e-2, 0.0, 0.0)}, False),
    ({"spacing_mm": (3.0 * (1 + 1e-6), 1.0, 1.0)}, True),
    ({"spacing_mm": (3.001, 1.0, 1.0)}, False),
    ({"direction": (1.0, 1e-6, 0, 0, 1, 0, 0, 0, 1)}, True),
    ({"direction": (1.0, 1e-3, 0, 0, 1, 0, 0, 0, 1)}, False),
    ({"file_flips": (True, False, False)}, False),
])
def test_geometry_tolerant_comparison(change: dict, matches: bool) -> None:
    base = Geometry(shape=(3, 4, 5), spacing_mm=(3.0, 1.0, 1.0))
    other = Geometry(**{**base.to_dict(), **change})
    assert base.isclose(other) is matches
    assert (base.mismatch(other) is None) is matches

"""RT Structure Set: pixel-edge outlines, decimal strings, round trip onto the CT slices, conformance."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from dicom_helpers import (
    dciodvfy,
    edit_series,
    phantom_ct,
    rasterise_rtstruct,
    slice_headers,
    write_ct_series,
)
from matplotlib.path import Path as PolygonPath

from sepnet_core.clinical.contours import mask_outlines, outline_area
from sepnet_core.clinical.rtstruct import (
    RT_STRUCTURE_SET_STORAGE,
    UNCERTAINTY_ROI_NUMBER,
    build_rtstruct,
    format_ds,
    write_rtstruct,
)
from sepnet_core.data.dicom import read_dicom_series
from sepnet_core.organs import organ_by_id


# ------------------------------------------------------------------------------------------- DS text
@pytest.mark.parametrize(
    ("value", "text"),
    [(-123.456789, "-123.4568"), (2.0, "2"), (-0.00001, "0"), (0.5, "0.5"), (-96.98256753005, "-96.9826"),
     (123456789012.5, "123456789012.5"), (12345678901234.56, "12345678901234.6"),
     (1234567890123456.0, "1234567890123456")],
)
def test_format_ds_fits_16_characters(value, text):
    assert format_ds(value) == text and len(text) <= 16


def test_bulk_decimal_strings_equal_format_ds():
    from sepnet_core.clinical.rtstruct import _ds_text

    values = np.array([0.0, -0.0, -0.00001, 0.00005, -0.00005, 100.0, -100.0, 10.5, 0.99995, -96.98256753005,
                       1e9 + 0.25, 123456789012.5, *np.random.default_rng(0).normal(0, 300, 1000)])
    assert _ds_text(values) == "\\".join(format_ds(v) for v in values)
    assert _ds_text(values[:5]) == "0\\0\\0\\0.0001\\-0.0001"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e17])
def test_format_ds_refuses_what_cannot_be_written(value):
    with pytest.raises(ValueError, match="DS"):
        format_ds(value)


# ------------------------------------------------------------------------------------------- outlines
def fill(outlines: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Even-odd fill at pixel centres (what a planning system does with nested contours)."""
    centres = np.stack(np.mgrid[:shape[0], :shape[1]], axis=-1).reshape(-1, 2).astype(float)
    out = np.zeros(shape[0] * shape[1], bool)
    for outline in outlines:
        out ^= PolygonPath(outline).contains_points(centres)
    return out.reshape(shape)


RING = np.ones((3, 3), bool)
RING[1, 1] = False
L_SHAPE = np.array([[1, 0], [1, 1]], bool)


@pytest.mark.parametrize(
    ("mask", "vertices", "areas"),
    [
        (np.zeros((3, 3), bool), [], []),
        (np.array([[1]], bool), [[(-0.5, -0.5), (-0.5, 0.5), (0.5, 0.5), (0.5, -0.5)]], [1.0]),
        (np.ones((2, 3), bool), [[(-0.5, -0.5), (-0.5, 2.5), (1.5, 2.5), (1.5, -0.5)]], [6.0]),
        (L_SHAPE, [[(-0.5, -0.5), (-0.5, 0.5), (0.5, 0.5), (0.5, 1.5), (1.5, 1.5), (1.5, -0.5)]], [3.0]),
        # A hole is its own outline, running the other way (negative area).
        (RING, [[(-0.5, -0.5), (-0.5, 2.5), (2.5, 2.5), (2.5, -0.5)],
                [(1.5, 0.5), (1.5, 1.5), (0.5, 1.5), (0.5, 0.5)]], [9.0, -1.0]),
        # Pixels touching at a corner only are two outlines sharing that corner.
        (np.eye(2, dtype=bool), [[(-0.5, -0.5), (-0.5, 0.5), (0.5, 0.5), (0.5, -0.5)],
                                 [(0.5, 0.5), (0.5, 1.5), (1.5, 1.5), (1.5, 0.5)]], [1.0, 1.0]),
    ],
)
def test_mask_outlines_of_small_masks(mask, vertices, areas):
    outlines = mask_outlines(mask)
    assert [[tuple(v) for v in o.tolist()] for o in outlines] == vertices
    assert [outline_area(o) for o in outlines] == areas


def test_outlines_fill_back_to_the_mask_and_preserve_its_area():
    rng = np.random.default_rng(0)
    for trial in range(60):
        mask = rng.random((9, 13)) < rng.uniform(0.1, 0.9)
        outlines = mask_outlines(mask)
        np.testing.assert_array_equal(fill(outlines, mask.shape), mask, err_msg=f"trial {trial}")
        assert sum(outline_area(o) for o in outlines) == pytest.approx(mask.sum())


def test_mask_outlines_needs_2d():
    with pytest.raises(ValueError, match="2D"):
        mask_outlines(np.zeros((2, 2, 2)))


# ------------------------------------------------------------------------------------------- RTSTRUCT
@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """The phantom's 28 slices holding all 22 organs as an oblique DICOM series
    (rotated 200 degrees about z, spacing 1.1 x 0.9 x 2.5 mm), read back, with the phantom's labels."""
    folder = tmp_path_factory.mktemp("rt") / "ct"
    hu, labels_file = phantom_ct()
    write_ct_series(folder, hu)
    image, geometry, info = read_dicom_series(folder)
    return {"folder": folder, "geometry": geometry, "info": info, "labels_file": labels_file,
            "labels": np.ascontiguousarray(geometry.to_canonical(labels_file))}


def contour_data_texts(path) -> list[str]:
    """Every decimal string of every ContourData, as stored in the file."""
    texts = []
    for roi in pydicom.dcmread(path).ROIContourSequence:
        for contour in roi.ContourSequence:
            raw = contour.get_item(0x30060050).value
            texts += raw.decode("ascii").strip().split("\\")
    return texts


def test_round_trip_onto_the_ct_slices_is_exact_and_the_file_validates(series, tmp_path):
    path = write_rtstruct(tmp_path / "rtstruct.dcm", series["labels"], series["geometry"], series["info"])
    ds = pydicom.dcmread(path)
    info, labels_file = series["info"], series["labels_file"]
    present = [int(v) for v in np.unique(labels_file) if v > 0]
    assert len(present) == 22  # the phantom's slices hold every organ
    assert [int(r.ROINumber) for r in ds.StructureSetROISequence] == present
    for roi, contour, observation in zip(ds.StructureSetROISequence, ds.ROIContourSequence,
                                         ds.RTROIObservationsSequence, strict=True):
        organ = organ_by_id(int(roi.ROINumber))
        assert roi.ROIName == organ.name and roi.ROIGenerationAlgorithm == "AUTOMATIC"
        assert roi.ReferencedFrameOfReferenceUID == info.frame_of_reference_uid
        assert [int(c) for c in contour.ROIDisplayColor] == list(organ.colour)
        assert int(contour.ReferencedROINumber) == organ.label == int(observation.ReferencedROINumber)
        assert observation.RTROIInterpretedType == "ORGAN"
    assert ds.SOPClassUID == RT_STRUCTURE_SET_STORAGE and ds.Modality == "RTSTRUCT"
    assert ds.StudyInstanceUID == info.study_instance_uid and ds.PatientID == "PHANTOM0"
    assert ds.FrameOfReferenceUID == info.frame_of_reference_uid
    referenced = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    assert referenced.ReferencedSOPInstanceUID == info.study_instance_uid
    series_item = referenced.RTReferencedSeriesSequence[0]
    assert series_item.SeriesInstanceUID == info.series_instance_uid
    assert {i.ReferencedSOPInstanceUID for i in series_item.ContourImageSequence} == set(slice_headers(
        series["folder"]))

    # Filled at pixel centres on the referenced slices, each ROI gives back its organ's voxels exactly:
    # the outlines run along pixel edges, half a pixel from every centre, so rounding the coordinates
    # to 0.1 um cannot move a centre across an edge. (A looser Dice >= 0.95 would be needed for
    # marching-squares outlines through pixel centres; here any difference is a bug.)
    filled = rasterise_rtstruct(ds, series["folder"])
    for k, uid in enumerate(info.sop_instance_uids):
        for label in present:
            expected = labels_file[k] == label
            got = filled[label].get(uid, np.zeros_like(expected))
            assert np.array_equal(got, expected), (label, k, int((got != expected).sum()))

    assert max(len(t) for t in contour_data_texts(path)) <= 16
    errors, warnings = dciodvfy(path)
    assert errors == [], errors
    assert warnings == [], warnings


def test_uncertainty_roi_holds_the_voxels_above_the_threshold(series, tmp_path):
    labels, geometry = series["labels"], series["geometry"]
    z, y, x = np.indices(labels.shape)
    uncertainty = (np.hypot(y - 30, x - 34) / 40 + 0.01 * z).astype(np.float32)
    ds = build_rtstruct(labels, geometry, series["info"], uncertainty=uncertainty, uncertainty_threshold=0.5)
    roi, contour, observation = (s[-1] for s in (ds.StructureSetROISequence, ds.ROIContourSequence,
                                                 ds.RTROIObservationsSequence))
    assert int(roi.ROINumber) == UNCERTAINTY_ROI_NUMBER and roi.ROIName == "Uncertainty > 0.5"
    assert observation.RTROIInterpretedType == ""
    filled = rasterise_rtstruct(ds, series["folder"])[UNCERTAINTY_ROI_NUMBER]
    expected = geometry.to_file(uncertainty > 0.5)
    for k, uid in enumerate(series["info"].sop_instance_uids):
        np.testing.assert_array_equal(filled.get(uid, np.zeros(expected.shape[1:], bool)), expected[k])


def test_non_ascii_patient_names_are_written_as_utf8(tmp_path):
    hu, labels_file = phantom_ct(slices=slice(46, 50))
    files = write_ct_series(tmp_path / "ct", hu)
    edit_series(files, SpecificCharacterSet="ISO_IR 100", PatientName="Müller^Jürgen", StudyID="42")
    _, geometry, info = read_dicom_series(tmp_path / "ct")
    path = write_rtstruct(tmp_path / "rt.dcm", geometry.to_canonical(labels_file), geometry, info)
    ds = pydicom.dcmread(path)
    assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName) == "Müller^Jürgen"
    assert ds.StudyID == "42"
    errors, _ = dciodvfy(path)
    assert errors == [], errors


def test_refuses_empty_sets_and_foreign_grids(series, tmp_path):
    labels, geometry, info = series["labels"], series["geometry"], series["info"]
    with pytest.raises(ValueError, match="would be empty"):
        build_rtstruct(np.zeros_like(labels), geometry, info)
    with pytest.raises(ValueError, match="geometry.shape"):
        build_rtstruct(labels[:-1], geometry, info)
    import dataclasses

    shifted = dataclasses.replace(geometry, origin=tuple(o + 5.0 for o in geometry.origin))
    with pytest.raises(ValueError, match="not on this series' grid"):
        build_rtstruct(labels, shifted, info)
    with pytest.raises(ValueError, match="together"):
        build_rtstruct(labels, geometry, info, uncertainty_threshold=0.5)
    with pytest.raises(ValueError, match="> 0"):
        build_rtstruct(labels, geometry, info, uncertainty=np.zeros(labels.shape), uncertainty_threshold=-1)
    write_rtstruct(tmp_path / "rt.dcm", labels, geometry, info)
    with pytest.raises(FileExistsError):
        write_rtstruct(tmp_path / "rt.dcm", labels, geometry, info)

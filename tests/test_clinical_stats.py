"""Per-organ statistics, the uncertainty reference and flag, the preview picture, the report's versions."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sepnet_core.clinical.outputs import ClinicalOptions, write_clinical_outputs
from sepnet_core.clinical.preview import organ_centre, write_preview
from sepnet_core.clinical.report import package_versions
from sepnet_core.clinical.statistics import (
    ORGAN_STATISTICS_NAME,
    STATISTICS_NAME,
    load_uncertainty_reference,
    organ_statistics,
    save_uncertainty_reference,
    totalsegmentator_statistics,
    uncertainty_reference,
    write_statistics,
)
from sepnet_core.data.geometry import Geometry
from sepnet_core.data.inputs import InputVolume
from sepnet_core.errors import SepNetInputError
from sepnet_core.organs import ORGANS


def tiny_case():
    """2 x 2 x 3 voxels of 2 x 1 x 0.5 mm (1 mm3): brain stem (1) on 3 voxels, eye L (2) on 1."""
    labels = np.zeros((2, 2, 3), np.uint8)
    labels[0, 0, :] = 1
    labels[1, 1, 2] = 2
    image = np.full(labels.shape, -1000.0, np.float32)
    image[0, 0, :] = [10.0, 20.0, 60.0]
    image[1, 1, 2] = 5.0
    unc = np.zeros(labels.shape, np.float32)
    unc[0, 0, :] = [0.0, 0.3, 0.6]
    unc[1, 1, 2] = 0.9
    return labels, image, unc, (2.0, 1.0, 0.5)


def reference(thresholds, kind="vote_entropy", members=6):
    return {"format": "sepnet-uncertainty-reference", "version": 1, "quantile": 0.9, "min_cases": 5,
            "uncertainty_kind": kind, "num_members": members, "source": "test",
            "organs": {k: {"threshold": t, "n_cases": 10} for k, t in thresholds.items()}}


def test_organ_statistics_of_a_hand_made_case():
    labels, image, unc, spacing = tiny_case()
    stats = organ_statistics(labels, image, unc, spacing)
    stem, eye, lens = (stats["organs"][k] for k in ("brain_stem", "eye_l", "lens_l"))
    assert (stem["voxels"], stem["volume_cm3"]) == (3, pytest.approx(0.003))
    assert stem["mean_hu"] == pytest.approx(30.0)
    assert stem["mean_uncertainty"] == pytest.approx(0.3)
    assert (eye["voxels"], eye["mean_hu"], eye["mean_uncertainty"]) == (1, 5.0, pytest.approx(0.9))
    assert lens == {"label": 4, "name": "Lens L", "voxels": 0, "volume_cm3": 0.0, "mean_hu": None,
                    "mean_uncertainty": None, "uncertainty_threshold": None, "high_uncertainty": None}
    assert len(stats["organs"]) == 22 and stats["units"]["volume_cm3"] == "cm3"
    assert stats["flag"]["note"].startswith("no uncertainty reference")
    assert all(entry["high_uncertainty"] is None for entry in stats["organs"].values())
    json.dumps(stats, allow_nan=False)  # plain JSON: no NaN


def test_totalsegmentator_schema_of_a_hand_made_case():
    stats = organ_statistics(*tiny_case())
    ts = totalsegmentator_statistics(stats)
    assert list(ts) == [o.key for o in ORGANS]  # every organ, label order
    assert all(set(entry) == {"volume", "intensity"} for entry in ts.values())
    assert ts["brain_stem"] == {"volume": pytest.approx(3.0), "intensity": pytest.approx(30.0)}  # mm3, HU
    assert ts["eye_l"] == {"volume": pytest.approx(1.0), "intensity": 5.0}
    assert ts["lens_l"] == {"volume": 0.0, "intensity": 0.0}  # TotalSegmentator's values for an empty class
    json.dumps(ts, allow_nan=False)


def test_totalsegmentator_schema_follows_its_definition_on_a_random_case():
    # TotalSegmentator: volume = voxel count x product of the spacings (mm3); intensity = the CT's mean
    # inside the mask (np.average with the mask as weights). Recomputed here organ by organ.
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 23, size=(6, 7, 8)).astype(np.uint8)
    labels[labels == 9] = 0  # one organ absent
    image = rng.normal(40.0, 300.0, size=labels.shape).astype(np.float32)
    spacing = (2.5, 0.8, 1.1)
    ts = totalsegmentator_statistics(organ_statistics(labels, image, np.zeros_like(image), spacing))
    for organ in ORGANS:
        mask = labels == organ.label
        expected_volume = mask.sum() * spacing[0] * spacing[1] * spacing[2]
        expected_intensity = np.average(image, weights=mask) if mask.any() else 0.0
        assert ts[organ.key]["volume"] == pytest.approx(expected_volume, rel=1e-12)
        assert ts[organ.key]["intensity"] == pytest.approx(expected_intensity, rel=1e-6, abs=1e-4)
    assert ts["temporal_lobe_l"] == {"volume": 0.0, "intensity": 0.0}


def test_statistics_writes_our_file_and_totalsegmentators(tmp_path):
    labels, image, unc, spacing = tiny_case()
    geometry = Geometry(labels.shape, spacing)
    volume = InputVolume(kind="nifti", path=tmp_path / "ct.nii.gz", image=image, geometry=geometry)
    options = ClinicalOptions(statistics=True)
    outputs, warnings = write_clinical_outputs(tmp_path, volume, labels, unc, options,
                                               uncertainty_kind="vote_entropy", num_members=2)
    assert warnings == [] and sorted(p.name for p in tmp_path.iterdir()) == [ORGAN_STATISTICS_NAME,
                                                                            STATISTICS_NAME]
    ours = json.loads((tmp_path / ORGAN_STATISTICS_NAME).read_text())
    theirs = json.loads((tmp_path / STATISTICS_NAME).read_text())
    assert ours["organs"]["brain_stem"]["volume_cm3"] == pytest.approx(0.003)
    assert theirs["brain_stem"] == {"volume": pytest.approx(3.0), "intensity": pytest.approx(30.0)}
    assert outputs["statistics"]["file"] == ORGAN_STATISTICS_NAME
    assert outputs["statistics"]["totalsegmentator_file"] == STATISTICS_NAME
    with pytest.raises(FileExistsError):
        write_statistics(tmp_path, organ_statistics(labels, image, unc, spacing))


@pytest.mark.parametrize(
    ("thresholds", "kind", "members", "expected", "note"),
    [
        ({"brain_stem": 0.25, "eye_l": 1.0}, "vote_entropy", 6, {"brain_stem": True, "eye_l": False}, None),
        ({"brain_stem": 0.35}, "vote_entropy", 6, {"brain_stem": False, "eye_l": None}, None),
        ({"brain_stem": None, "eye_l": 0.5}, "vote_entropy", 6, {"brain_stem": None, "eye_l": True}, None),
        ({"brain_stem": 0.25}, "predictive_entropy", 6, {"brain_stem": None, "eye_l": None}, "computed with"),
        ({"brain_stem": 0.25}, "vote_entropy", 3, {"brain_stem": None, "eye_l": None}, "ensemble of 3"),
    ],
)
def test_flag_compares_with_the_reference_of_the_same_measure(thresholds, kind, members, expected, note):
    labels, image, unc, spacing = tiny_case()
    stats = organ_statistics(labels, image, unc, spacing, reference=reference(thresholds, kind, members),
                             uncertainty_kind="vote_entropy", num_members=6)
    assert {k: stats["organs"][k]["high_uncertainty"] for k in expected} == expected
    if note is None:
        assert stats["flag"]["note"] is None and stats["flag"]["reference"]["source"] == "test"
    else:
        assert note in stats["flag"]["note"] and stats["flag"]["reference"] is None


def test_organ_statistics_checks_its_arguments():
    labels, image, unc, spacing = tiny_case()
    with pytest.raises(ValueError, match="one shape"):
        organ_statistics(labels, image[:1], unc, spacing)
    with pytest.raises(ValueError, match="integer"):
        organ_statistics(labels.astype(float), image, unc, spacing)
    with pytest.raises(ValueError, match="0..22"):
        organ_statistics(labels + 30, image, unc, spacing)
    with pytest.raises(ValueError, match="spacing_mm"):
        organ_statistics(labels, image, unc, (1.0, 0.0, 1.0))


def test_reference_thresholds_are_per_organ_quantiles_of_held_out_cases():
    # Ten held-out cases: brain stem 0.0 .. 0.9 (numpy's linear 90th percentile: 0.81), parotid L on
    # three cases only (fewer than min_cases=5: no threshold), one NaN (organ not predicted) ignored.
    rows = [(f"c{i}", "brain_stem", i / 10) for i in range(10)]
    rows += [("c0", "parotid_l", 0.2), ("c1", "parotid_l", 0.4), ("c2", "parotid_l", 0.6),
             ("c3", "parotid_l", math.nan)]
    table = pd.DataFrame(rows, columns=["case", "organ", "mean_uncertainty"])
    ref = uncertainty_reference(table, uncertainty_kind="vote_entropy", num_members=6, source="book")
    assert ref["organs"]["brain_stem"] == {"threshold": pytest.approx(0.81), "n_cases": 10}
    assert ref["organs"]["parotid_l"] == {"threshold": None, "n_cases": 3}
    assert (ref["quantile"], ref["min_cases"], ref["uncertainty_kind"], ref["num_members"]) == \
        (0.9, 5, "vote_entropy", 6)
    low = uncertainty_reference(table, quantile=0.5, min_cases=3)
    assert low["organs"]["parotid_l"]["threshold"] == pytest.approx(0.4)
    assert low["organs"]["brain_stem"]["threshold"] == pytest.approx(0.45)
    book = table.rename(columns={"mean_uncertainty": "uncertainty"})
    assert uncertainty_reference(book, column="uncertainty")["organs"] == ref["organs"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"quantile": 1.0}, "quantile"), ({"min_cases": 0}, "min_cases"), ({"column": "unc"}, "lacks column")],
)
def test_reference_checks_its_arguments(kwargs, message):
    table = pd.DataFrame({"organ": ["brain_stem"], "mean_uncertainty": [0.1]})
    with pytest.raises(ValueError, match=message):
        uncertainty_reference(table, **kwargs)


def test_reference_refuses_unknown_organs():
    with pytest.raises(ValueError, match="brain"):
        uncertainty_reference(pd.DataFrame({"organ": ["brain"], "mean_uncertainty": [0.1]}))


def test_reference_file_round_trip_and_bad_files(tmp_path):
    table = pd.DataFrame({"organ": ["eye_l"] * 5, "mean_uncertainty": [0.1, 0.2, 0.3, 0.4, 0.5]})
    ref = uncertainty_reference(table)
    path = save_uncertainty_reference(tmp_path / "ref.json", ref)
    assert load_uncertainty_reference(path) == json.loads(json.dumps(ref))
    for name, text, fragment in [("a.json", "{", "not a JSON"),
                                 ("b.json", "{}", "not an uncertainty reference"),
                                 ("c.json", json.dumps({**ref, "organs": {"eyes": {}}}), "unknown organ"),
                                 ("d.json", json.dumps({**ref, "organs": {"eye_l": {"threshold": "x"}}}),
                                  "threshold")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(SepNetInputError, match=fragment) as excinfo:
            load_uncertainty_reference(tmp_path / name)
        assert name in str(excinfo.value) and len(str(excinfo.value).splitlines()) == 1
    with pytest.raises(FileNotFoundError):
        load_uncertainty_reference(tmp_path / "missing.json")


# ------------------------------------------------------------------------------------------- preview
@pytest.mark.parametrize(
    ("voxels", "centre"),
    [([], (2, 3, 4)), ([(0, 0, 0)], (0, 0, 0)), ([(1, 2, 3), (3, 4, 5)], (2, 3, 4)), ([(0, 0, 0), (4, 6, 0)],
                                                                                        (2, 3, 0))],
)
def test_organ_centre(voxels, centre):
    labels = np.zeros((5, 7, 9), np.uint8)
    for v in voxels:
        labels[v] = 7
    assert organ_centre(labels) == centre


def test_preview_is_a_png_with_the_requested_size(tmp_path):
    from matplotlib.image import imread

    labels = np.zeros((10, 20, 30), np.uint8)
    labels[3:7, 5:10, 8:20] = 1
    image = np.where(labels > 0, 40.0, -1000.0).astype(np.float32)
    unc = (labels > 0).astype(np.float32) * 0.6
    path = write_preview(tmp_path / "p.png", image, labels, unc, (3.0, 1.0, 1.0), title="t", dpi=50)
    picture = imread(path)
    # Physical widths 30, 30 and 20 mm share 9.6 in: 3.6, 3.6, 2.4 in; the tallest panel (coronal and
    # sagittal: 30 mm high) is 3.6 in. Figure: 9.6 + 2.4 = 12 in by 2 x 3.6 + 0.9 = 8.1 in, at 50 dpi.
    assert picture.shape[:2] == (405, 600)
    assert picture[..., :3].std() > 0.05  # not blank
    with pytest.raises(FileExistsError):
        write_preview(path, image, labels, unc, (3.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="one shape"):
        write_preview(tmp_path / "q.png", image, labels[:5], unc, (3.0, 1.0, 1.0))
    assert not (tmp_path / "q.png").exists()


def test_package_versions_name_the_stack():
    versions = package_versions()
    assert versions["sepnet_core"] and versions["numpy"] == np.__version__
    assert versions["pydicom"] and versions["SimpleITK"] and versions["torch"]
    assert versions["python-gdcm"] and versions["nibabel"]  # the DICOM decoder and the NIfTI header reader
    assert package_versions(("surely-not-installed-xyz",))["surely-not-installed-xyz"] is None

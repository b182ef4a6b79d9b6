"""``sepnet predict``: outputs on the input's grid (NIfTI and DICOM input), report, RT Structure Set,
statistics, refusal, all-or-nothing, one-line errors for bad inputs, strict parsing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch

from sepnet_core import cli
from sepnet_core.organs import ORGANS
from sepnet_core.training import preset, save_checkpoint

SPACING_XYZ = (0.8, 0.9, 3.0)
ORIGIN = (-12.5, 30.0, 7.0)
SHAPE_ZYX = (10, 20, 24)


def write_ct(path: Path, array_zyx: np.ndarray, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), origin=ORIGIN) -> Path:
    image = sitk.GetImageFromArray(array_zyx.astype(np.int16))
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin(origin)
    image.SetDirection(tuple(float(v) for v in direction))
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two tiny untrained checkpoints (one with a 16 x 16 crop) and two CT files of one anatomy:
    A stored with identity direction, B the same voxels stored with x reversed (direction -1 on x)."""
    root = tmp_path_factory.mktemp("predict")
    checkpoints = []
    for seed, crop in ((0, None), (1, (16, 16))):
        torch.manual_seed(seed)
        cfg = preset("smoke")
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, crop_yx=crop))
        checkpoints.append(save_checkpoint(root / f"m{seed}.pt", cfg.model.build(), cfg))
    rng = np.random.default_rng(0)
    ct = rng.integers(-1000, 1000, size=SHAPE_ZYX)
    ct_a = write_ct(root / "a.nii.gz", ct)
    origin_b = (ORIGIN[0] + (SHAPE_ZYX[2] - 1) * SPACING_XYZ[0], ORIGIN[1], ORIGIN[2])
    mirrored = (-1, 0, 0, 0, 1, 0, 0, 0, 1)
    ct_b = write_ct(root / "b.nii.gz", ct[:, :, ::-1], direction=mirrored, origin=origin_b)
    c, si = np.cos(0.1), np.sin(0.1)  # oblique: 0.1 rad about z
    ct_c = write_ct(root / "c.nii.gz", ct, direction=(c, -si, 0, si, c, 0, 0, 0, 1))
    return {"root": root, "ckpts": [str(c) for c in checkpoints], "a": ct_a, "b": ct_b, "c": ct_c}


def geometry_of(path: Path) -> tuple:
    image = sitk.ReadImage(str(path))
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def read_array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1, err
    return err


def test_ensemble_outputs_lie_on_the_input_grid_and_report_describes_them(files, tmp_path, capsys):
    out_a, out_b, out_c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for ct, out in ((files["a"], out_a), (files["b"], out_b), (files["c"], out_c)):
        extra = ["--statistics"] if out is out_a else []
        assert cli.main(["predict", str(ct), "-m", *files["ckpts"], "-o", str(out), "--device", "cpu",
                         *extra]) == 0
        assert sorted(p.name for p in out.iterdir()) == sorted(["labels.nii.gz", "report.json",
                                                                "uncertainty.nii.gz",
                                                                *(["organ_statistics.json", "statistics.json"]
                                                                  if extra else [])])
        for name in ("labels.nii.gz", "uncertainty.nii.gz"):
            assert geometry_of(out / name) == geometry_of(ct)
    labels_a, unc_a = read_array(out_a / "labels.nii.gz"), read_array(out_a / "uncertainty.nii.gz")
    assert labels_a.dtype == np.uint8 and unc_a.dtype == np.float32 and labels_a.max() <= 22
    # B stores the same voxels mirrored in x: its outputs must be mirrored the same way.
    np.testing.assert_array_equal(read_array(out_b / "labels.nii.gz"), labels_a[:, :, ::-1])
    np.testing.assert_array_equal(read_array(out_b / "uncertainty.nii.gz"), unc_a[:, :, ::-1])
    np.testing.assert_array_equal(read_array(out_c / "labels.nii.gz"), labels_a)  # same voxel order as A
    # Member 2 crops 20 x 24 to 16 x 16 (rows 2..17, columns 4..19 kept). Outside, its background
    # probability 1 makes the mean background probability >= 0.5: the fused label is background.
    outside = np.ones(SHAPE_ZYX[1:], bool)
    outside[2:18, 4:20] = False
    assert not labels_a[:, outside].any() and labels_a[:, ~outside].any()

    report = json.loads((out_a / "report.json").read_text())
    assert report["outputs"]["uncertainty_kind"] == "vote_entropy"
    from sepnet_core.device import resolve_amp

    assert report["inference"] == {"mode": "gaussian", "overlap": 0.5, "batch_size": 1, "device": "cpu",
                                   "amp": resolve_amp(None, "cpu"), "stream": True, "roi_subset": None,
                                   "case": "a", "fusion": "argmax of the mean probability"}
    for entry, ckpt, seed in zip(report["checkpoints"], files["ckpts"], (0, 0), strict=True):
        assert entry["sha256"] == hashlib.sha256(Path(ckpt).read_bytes()).hexdigest()
        assert entry["patch_size"] == [8, 32, 32]
        assert entry["seed"] == seed and len(entry["config_hash"]) == 12
    assert report["checkpoints"][0]["config_hash"] != report["checkpoints"][1]["config_hash"]  # crops differ
    assert [c["crop_yx"] for c in report["checkpoints"]] == [None, [16, 16]]
    assert report["input"]["path"] == str(files["a"].resolve()) and report["input"]["kind"] == "nifti"
    assert report["versions"]["torch"] == torch.__version__ and report["versions"]["sepnet_core"]
    assert report["device"].startswith("cpu")
    assert report["run_time_s"]["total"] > 0
    statistics = json.loads((out_a / "organ_statistics.json").read_text())
    voxel_cm3 = np.prod(SPACING_XYZ) / 1000
    for organ in ORGANS:
        entry = statistics["organs"][organ.key]
        mask = labels_a == organ.label
        assert entry["voxels"] == int(mask.sum())
        assert entry["volume_cm3"] == pytest.approx(mask.sum() * voxel_cm3)
        if mask.any():
            assert entry["mean_uncertainty"] == pytest.approx(float(unc_a[mask].mean()), rel=1e-5)
        else:
            assert entry["mean_uncertainty"] is None
    assert "wrote" in capsys.readouterr().out


def test_single_checkpoint_writes_predictive_entropy(files, tmp_path):
    out = tmp_path / "single"
    args = ["predict", str(files["a"]), "-m", files["ckpts"][0], "-o", str(out), "--mode", "reference"]
    assert cli.main([*args, "--batch-size", "3"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["outputs"]["uncertainty_kind"] == "predictive_entropy"
    assert report["inference"]["mode"] == "reference" and report["inference"]["overlap"] is None
    unc = read_array(out / "uncertainty.nii.gz")
    assert unc.min() >= 0 and unc.max() <= np.log(23) + 1e-5 and len(np.unique(unc)) > 10


def test_existing_outputs_are_refused_without_force(files, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["predict", str(files["a"]), "-m", files["ckpts"][0], "-o", str(out)]
    assert cli.main([*args, "--preview"]) == 0
    assert (out / "preview.png").is_file()
    (out / "report.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert cli.main(args) == 2
    assert "--force" in one_line_error(capsys)
    assert (out / "report.json").read_text() == "{}"
    assert cli.main([*args, "--force"]) == 0
    assert json.loads((out / "report.json").read_text())["sepnet_version"]
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "preview.png").exists()  # from the earlier run: it would describe other labels
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left


def test_corrupt_checkpoint_fails_in_one_line_and_leaves_no_output(files, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(Path(files["ckpts"][0]).read_bytes()[:1000])
    out = tmp_path / "sub" / "out"
    assert cli.main(["predict", str(files["a"]), "-m", files["ckpts"][0], str(bad), "-o", str(out)]) == 2
    assert "bad.pt" in one_line_error(capsys)
    assert not out.exists() and not out.parent.exists()


def test_failure_while_writing_leaves_no_partial_output(files, tmp_path, monkeypatch):
    import sepnet_core.fileio

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(sepnet_core.fileio, "write_json_atomic", broken)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        cli.main(["predict", str(files["a"]), "-m", files["ckpts"][0], "-o", str(out)])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("input_name", ["missing.nii.gz", "notes.txt"])
def test_missing_or_unsupported_input_exits_2_with_one_line(files, tmp_path, capsys, input_name):
    if input_name == "notes.txt":
        (tmp_path / input_name).write_text("not a CT")
    out = tmp_path / "out"
    assert cli.main(["predict", str(tmp_path / input_name), "-m", files["ckpts"][0], "-o", str(out)]) == 2
    assert input_name in one_line_error(capsys)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_exits_2_with_one_line(files, tmp_path, capsys):
    args = ["predict", str(files["a"]), "-m", files["ckpts"][0], "-o", str(tmp_path / "o")]
    assert cli.main([*args, "--device", "cuda"]) == 2
    assert "cuda" in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_output_below_a_file_exits_2_with_one_line(files, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    args = ["predict", str(files["a"]), "-m", files["ckpts"][0], "-o", str(tmp_path / "file" / "o")]
    assert cli.main(args) == 2
    assert "file" in one_line_error(capsys)


@pytest.mark.parametrize(
    "extra",
    [["--overlapp", "0.5"], ["--overlap", "1.5"], ["--overlap", "half"], ["--mode", "nearest"],
     ["--device", "tpu"], ["--mode", "reference", "--overlap", "0.5"], ["--ove", "0.5"],
     ["--batch-size", "0"], ["--batch-size", "2.5"]],
)
def test_strict_parsing_rejects_typos_and_bad_values(files, tmp_path, extra):
    with pytest.raises(SystemExit) as exc:
        cli.main(["predict", str(files["a"]), "-m", files["ckpts"][0], "-o", str(tmp_path / "o"), *extra])
    assert exc.value.code == 2
    assert not (tmp_path / "o").exists()


def test_help_states_defaults_and_units(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["predict", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for fragment in ("default: auto", "default: gaussian", "default: 0.5", "default: 1", "nats", "ml", "HU",
                     "--force", "cm3", "DICOM", "zip", "--series", "--rtstruct", "--statistics", "--preview",
                     "--uncertainty-roi", "--uncertainty-reference", "default: off"):
        assert fragment in text


# ------------------------------------------------------------------------------------------- DICOM input
@pytest.fixture(scope="module")
def dicom(tmp_path_factory):
    """8 phantom slices (64 x 64) as an oblique DICOM series (200 degrees about z, so x and y also flip;
    spacing 1.1 x 0.9 x 2.5 mm), the same series zipped, and an uncertainty reference that flags
    everything (threshold 0 for every organ, 2-member vote entropy)."""
    from dicom_helpers import phantom_ct, write_ct_series

    root = tmp_path_factory.mktemp("dicom")
    hu, _ = phantom_ct(slices=slice(44, 52))
    files = write_ct_series(root / "ct", hu)
    archive = root / "ct.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in files:
            z.write(f, f"series/{f.name}")
    reference = {"format": "sepnet-uncertainty-reference", "version": 1, "quantile": 0.9, "min_cases": 5,
                 "uncertainty_kind": "vote_entropy", "num_members": 2, "source": "test",
                 "organs": {o.key: {"threshold": 0.0, "n_cases": 5} for o in ORGANS}}
    (root / "reference.json").write_text(json.dumps(reference))
    return {"root": root, "folder": root / "ct", "zip": archive, "files": files, "hu": hu,
            "reference": root / "reference.json"}


def test_dicom_series_gives_outputs_on_its_grid_and_an_rtstruct_matching_the_labels(files, dicom, tmp_path):
    from dicom_helpers import dciodvfy, rasterise_rtstruct, slice_index

    out = tmp_path / "out"
    args = ["predict", str(dicom["folder"]), "-m", *files["ckpts"], "-o", str(out), "--device", "cpu",
            "--rtstruct", "--uncertainty-roi", "0.5", "--statistics", "--preview",
            "--uncertainty-reference", str(dicom["reference"])]
    assert cli.main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(["labels.nii.gz", "uncertainty.nii.gz",
                                                            "report.json", "rtstruct.dcm", "statistics.json",
                                                            "organ_statistics.json",
                                                            "preview.png"])
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(dicom["folder"])))
    series = reader.Execute()
    labels_image = sitk.ReadImage(str(out / "labels.nii.gz"))
    for name in ("labels.nii.gz", "uncertainty.nii.gz"):
        size, spacing, origin, direction = geometry_of(out / name)
        assert size == series.GetSize()
        np.testing.assert_allclose(spacing, series.GetSpacing(), atol=1e-5)
        np.testing.assert_allclose(origin, series.GetOrigin(), atol=1e-5)
        np.testing.assert_allclose(direction, series.GetDirection(), atol=1e-6)
    labels = sitk.GetArrayFromImage(labels_image)
    uncertainty = read_array(out / "uncertainty.nii.gz")
    present = [int(v) for v in np.unique(labels) if v > 0]
    assert present  # an untrained ensemble still labels some voxels

    # Each ROI, filled on the DICOM slices it references, gives back exactly the labels of the NIfTI slice
    # at the same position (pixel-edge outlines: no boundary tolerance is needed; see test_rtstruct.py).
    rtstruct = pydicom.dcmread(out / "rtstruct.dcm")
    filled = rasterise_rtstruct(rtstruct, dicom["folder"])
    assert sorted(filled) == [*present, 100]  # organs found + the uncertainty ROI
    for f in dicom["files"]:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        k = slice_index(labels_image, ds.ImagePositionPatient)
        empty = np.zeros(labels.shape[1:], bool)
        for label in present:
            assert np.array_equal(filled[label].get(ds.SOPInstanceUID, empty), labels[k] == label), (label, k)
        assert np.array_equal(filled[100].get(ds.SOPInstanceUID, empty), uncertainty[k] > 0.5), k
    errors, _ = dciodvfy(out / "rtstruct.dcm")
    assert errors == [], errors

    report = json.loads((out / "report.json").read_text())
    assert report["input"]["kind"] == "dicom-folder"
    assert report["input"]["dicom"]["series_instance_uid"] == rtstruct.ReferencedFrameOfReferenceSequence[0] \
        .RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID
    assert report["outputs"]["rtstruct"]["file"] == "rtstruct.dcm" and report["versions"]["pydicom"]
    statistics = json.loads((out / "organ_statistics.json").read_text())
    assert statistics["flag"]["note"] is None  # the reference matches: vote entropy of 2 members
    assert {k for k, e in statistics["organs"].items() if e["high_uncertainty"]} == \
        {k for k, e in statistics["organs"].items() if e["voxels"] and e["mean_uncertainty"] > 0}
    assert report["outputs"]["statistics"]["high_uncertainty"] == \
        [o.key for o in ORGANS if statistics["organs"][o.key]["high_uncertainty"]]

    # The zip of the same series gives the same labels.
    assert cli.main(["predict", str(dicom["zip"]), "-m", *files["ckpts"], "-o", str(tmp_path / "z")]) == 0
    np.testing.assert_array_equal(read_array(tmp_path / "z" / "labels.nii.gz"), labels)
    assert json.loads((tmp_path / "z" / "report.json").read_text())["input"]["kind"] == "dicom-zip"


def bad_input(name: str, files: dict, dicom: dict, tmp_path: Path) -> tuple[Path, list[str], list[str]]:
    """(input, extra arguments, fragments the error must hold) for one kind of bad input."""
    from dicom_helpers import edit_series, shift_slice, write_ct_series

    folder = tmp_path / name
    if name == "nifti_with_rtstruct":
        return files["a"], ["--rtstruct"], ["--rtstruct needs DICOM input", "NIfTI"]
    if name == "nifti_with_series":
        return files["a"], ["--series", "1.2.3"], ["--series applies to DICOM input"]
    if name == "zip_traversal":
        archive = tmp_path / "evil.zip"
        with zipfile.ZipFile(archive, "w") as z:
            z.write(dicom["files"][0], "ok.dcm")
            z.writestr("../../evil.dcm", b"x")
        return archive, [], ["'../../evil.dcm'", "outside"]
    if name == "empty_folder":
        folder.mkdir()
        return folder, [], ["no DICOM files found"]
    written = write_ct_series(folder, dicom["hu"])
    if name == "two_series":
        write_ct_series(folder / "other", dicom["hu"])
        return folder, [], ["2 DICOM series", "--series UID"]
    if name == "unknown_series":
        return folder, ["--series", "1.2.3.999"], ["no series with UID 1.2.3.999"]
    if name == "not_ct":
        edit_series(written, Modality="MR")
        return folder, [], ["modality MR"]
    if name == "missing_slice":
        written[4].unlink()
        return folder, [], ["misses 1 slice"]
    if name == "uneven_spacing":
        shift_slice(written[-1], 1.0)
        return folder, [], ["inconsistent slice spacing"]
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["two_series", "unknown_series", "not_ct", "missing_slice", "uneven_spacing",
                                  "empty_folder", "zip_traversal", "nifti_with_rtstruct",
                                  "nifti_with_series"])
def test_bad_inputs_exit_2_with_one_line_and_leave_no_output(files, dicom, tmp_path, capsys, name):
    source, extra, fragments = bad_input(name, files, dicom, tmp_path)
    out = tmp_path / "results" / "out"
    assert cli.main(["predict", str(source), "-m", files["ckpts"][0], "-o", str(out), *extra]) == 2
    error = one_line_error(capsys)
    assert str(source) in error
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    assert not out.exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "extra",
    [["--uncertainty-roi", "0.5"], ["--rtstruct", "--uncertainty-roi", "-1"],
     ["--rtstruct", "--uncertainty-roi", "nan"], ["--uncertainty-reference", "ref.json"], ["--rtstruc"]],
)
def test_clinical_options_are_parsed_strictly(files, dicom, tmp_path, extra):
    with pytest.raises(SystemExit) as exc:
        cli.main(["predict", str(dicom["folder"]), "-m", files["ckpts"][0], "-o", str(tmp_path / "o"),
                  *extra])
    assert exc.value.code == 2
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ issue 17: folder mode and new options
def test_folder_of_two_cases_loads_the_models_once(files, tmp_path, capsys, monkeypatch):
    """A folder of cases: one output subfolder per case, each equal to a single-input run; the checkpoint
    files are read once for the whole folder (load calls counted), not once per case."""
    import shutil

    import sepnet_core.inference.segmentation as segment_module

    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(files["a"], cases / "p1.nii.gz")
    (cases / "p2").mkdir()
    shutil.copy(files["b"], cases / "p2" / "data.nii.gz")  # a StructSeg case folder
    loads: list[str] = []
    real = segment_module.load_model

    def counting(path, device="cpu"):
        loads.append(str(path))
        return real(path, device=device)

    monkeypatch.setattr(segment_module, "load_model", counting)
    out = tmp_path / "out"
    assert cli.main(["predict", "-i", str(cases), "-m", *files["ckpts"], "-o", str(out), "--device", "cpu",
                     "--no-amp"]) == 0
    assert sorted(loads) == sorted(files["ckpts"])  # two checkpoints, two cases: two loads
    assert sorted(p.name for p in out.iterdir()) == ["p1", "p2"]
    single = tmp_path / "single"
    assert cli.main(["predict", "-i", str(files["b"]), "-m", *files["ckpts"], "-o", str(single),
                     "--device", "cpu", "--no-amp"]) == 0
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "p2" / "labels.nii.gz"))),
                                  sitk.GetArrayFromImage(sitk.ReadImage(str(single / "labels.nii.gz"))))
    report = json.loads((out / "p1" / "report.json").read_text())
    assert report["inference"]["case"] == "p1" and report["inference"]["amp"] is False
    assert "wrote 2 case folder(s)" in capsys.readouterr().out
    # A second run refuses the existing case folders, and leaves them as they were.
    before = (out / "p1" / "labels.nii.gz").read_bytes()
    assert cli.main(["predict", str(cases), "-m", *files["ckpts"], "-o", str(out), "--device", "cpu"]) == 2
    assert "--force" in capsys.readouterr().err and (out / "p1" / "labels.nii.gz").read_bytes() == before


def test_list_of_inputs_masks_probabilities_and_roi_subset(files, tmp_path, capsys):
    out = tmp_path / "out"
    keys = [o.key for o in ORGANS]
    full = tmp_path / "full"
    assert cli.main(["predict", str(files["a"]), "-m", *files["ckpts"], "-o", str(full), "--device", "cpu",
                     "--no-amp", "--save-probabilities"]) == 0
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(full / "labels.nii.gz")))
    found = [keys[v - 1] for v in np.unique(labels) if v > 0]
    assert len(found) >= 2, "untrained members label few organs; the subset check needs two"
    with np.load(full / "probabilities.npz") as saved:
        probs = saved["probabilities"]
        assert probs.shape == (23, *SHAPE_ZYX) and probs.dtype == np.float16
        assert list(saved["classes"][1:]) == keys
    np.testing.assert_allclose(probs.astype(np.float32).sum(axis=0), 1.0, atol=2e-2)
    assert cli.main(["predict", "-i", str(files["a"]), str(files["c"]), "-m", *files["ckpts"], "-o", str(out),
                     "--device", "cpu", "--no-amp", "--masks", "--roi-subset", found[0], "-v"]) == 0
    case = out / "a"
    subset = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "labels.nii.gz")))
    label = keys.index(found[0]) + 1
    np.testing.assert_array_equal(subset, np.where(labels == label, labels, 0))
    assert sorted(p.name for p in (case / "masks").iterdir()) == [f"{found[0]}.nii.gz"]
    mask = sitk.ReadImage(str(case / "masks" / f"{found[0]}.nii.gz"))
    assert geometry_of(case / "masks" / f"{found[0]}.nii.gz") == geometry_of(files["a"])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), (labels == label).astype(np.uint8))
    assert (out / "c" / "labels.nii.gz").is_file()
    assert "DEBUG" in capsys.readouterr().out  # -v after the sub-command


def test_models_option_does_not_swallow_the_ct(files, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        cli.main(["predict", "-m", *files["ckpts"], str(files["a"]), "-o", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a checkpoint file name" in err and str(files["a"]) in err
    assert not out.exists()


def test_progress_bar_on_a_terminal_only(files, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert cli.main(["predict", str(files["a"]), "-m", *files["ckpts"], "-o", str(tmp_path / "o1"),
                     "--device", "cpu", "--no-amp"]) == 0
    err = capsys.readouterr().err
    assert "a:" in err and "window/s" in err  # the bar of case "a", counting windows (cleared when done)
    assert cli.main(["predict", str(files["a"]), "-m", *files["ckpts"], "-o", str(tmp_path / "o2"),
                     "--device", "cpu", "--no-amp", "--quiet"]) == 0
    assert capsys.readouterr().err == ""

"""Bad input at the command line: one table, one row per way a user can get it wrong (issue 8).

Every row builds its bad input in ``tmp_path`` and runs the real ``sepnet`` command (in-process through
:func:`sepnet_core.cli.main`, or for the rows with ``sub=True`` as a fresh ``python -m sepnet_core.cli``
process, which also proves the exit code and the absence of a traceback). A row passes when:

* the exit code is 2 (a user error), or 0 for the one row that only warns;
* stderr is exactly one non-empty line: ``sepnet <command>: error: ...`` (or ``warning``), no traceback;
* that line names the offending file by its full path (``culprit``) and the problem (``problem``, a
  regular expression chosen per row);
* nothing partial is left: every file and folder under ``tmp_path`` is exactly as it was before the
  command ran (no output folder, no temporary file, an existing output unchanged).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from sepnet_core import cli
from sepnet_core.data.io import Geometry, write_image
from sepnet_core.data.phantom import write_dataset
from sepnet_core.training import fit, load_checkpoint, preset
from sepnet_core.training.checkpoint import FORMAT_VERSION

SHAPE = (16, 32, 32)  # (z, y, x) voxels of the hand-made volumes
SPACING = (3.0, 2.0, 2.0)  # (z, y, x) mm
GEOMETRY = Geometry(shape=SHAPE, spacing_mm=SPACING, origin=(-30.0, -30.0, 10.0))
REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- assets
@dataclass(frozen=True)
class Assets:
    """Made once per module: a good CT, a good labelled case, a trained smoke checkpoint."""

    ct: Path  # (16, 32, 32) int16 HU with air and bone: reads without a warning
    case: Path  # case folder: data.nii.gz (= ct) + label.nii.gz (organs 1, 2)
    checkpoint: Path  # best.pt of a 1-epoch smoke run on a smoke phantom
    root: Path


def _ct_array(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 1500, size=SHAPE).astype(np.int16)


def _label_array() -> np.ndarray:
    label = np.zeros(SHAPE, np.uint8)
    label[4:10, 8:14, 8:14] = 1
    label[4:10, 18:24, 18:24] = 2
    return label


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Assets:
    root = tmp_path_factory.mktemp("assets")
    ct = write_image(root / "ct.nii.gz", _ct_array(), GEOMETRY)
    case = root / "case"
    case.mkdir()
    shutil.copy(ct, case / "data.nii.gz")
    write_image(case / "label.nii.gz", _label_array(), GEOMETRY)
    phantom = root / "phantom"
    write_dataset(phantom, cases=2, seed=0, profile="smoke", split={"train": 1, "valid": 1, "test": 0},
                  workers=1)
    config = preset("smoke", data_root=str(phantom), epochs=1)
    best = fit(config, root / "run")
    return Assets(ct=ct, case=case, checkpoint=best, root=root)


# ----------------------------------------------------------------------------------- input builders
def _save(path: Path, array: np.ndarray, spacing_xyz=(2.0, 2.0, 3.0), origin=(-30.0, -30.0, 10.0)) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def _truncated(path: Path, a: Assets) -> Path:
    data = a.ct.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def _corrupt(path: Path, a: Assets) -> Path:
    """A gzip stream whose compressed middle is overwritten with garbage (the header still reads)."""
    data = bytearray(a.ct.read_bytes())
    data[200:400] = bytes(range(200))
    path.write_bytes(bytes(data))
    return path


def _not_an_image(path: Path) -> Path:
    path.write_bytes(gzip.compress(b"patient,dose\n1,70 Gy\n"))
    return path


def _nib(path: Path, array: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array, np.diag([2.0, 2.0, 3.0, 1.0])), str(path))
    return path


def _with_value(path: Path, value: float) -> Path:
    array = _ct_array().astype(np.float32)
    array[5, 6, 7] = value
    return _save(path, array)


def _case(folder: Path, a: Assets, label: np.ndarray | None = None, **label_grid) -> Path:
    """A case folder holding the good CT and ``label`` (default: the good label) on ``label_grid``."""
    folder.mkdir(parents=True)
    shutil.copy(a.case / "data.nii.gz", folder / "data.nii.gz")
    if label is None and not label_grid:
        shutil.copy(a.case / "label.nii.gz", folder / "label.nii.gz")
    else:
        _save(folder / "label.nii.gz", _label_array() if label is None else label, **label_grid)
    return folder


def _dataset(root: Path, a: Assets, bad_case: Callable[[Path], Path] | None = None, name: str = "p1") -> Path:
    """``<root>/train/<name>`` (bad if ``bad_case`` is given) and ``<root>/valid/v1`` (good)."""
    if bad_case is None:
        _case(root / "train" / name, a)
    else:
        bad_case(root / "train" / name)
    _case(root / "valid" / "v1", a)
    return root


def _dicom_series(folder: Path, volume: np.ndarray, series_uid: str, skip: int | None = None,
                  first: int = 0) -> Path:
    """Write ``volume`` (z, y, x) int16 HU as one axial CT slice file per z (slice ``skip`` left out)."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.shape[0]):
        if k == skip:
            continue
        image = sitk.GetImageFromArray(volume[k])
        image.SetSpacing((2.0, 2.0))
        tags = {
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",  # CT image storage
            "0008|0018": f"{series_uid}.{k + 1}",
            "0008|0060": "CT",
            "0010|0020": "BADINPUT",
            "0020|000d": "1.2.826.0.1.3680043.8.498.1",
            "0020|000e": series_uid,
            "0020|0052": "1.2.826.0.1.3680043.8.498.9",  # frame of reference
            "0020|0013": str(k + 1),
            "0020|0032": f"-30\\-30\\{10.0 + 3.0 * k}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": "2\\2",
            "0018|0050": "3",
            "0028|1052": "0",
            "0028|1053": "1",
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"slice_{first + k:03d}.dcm"))
        writer.Execute(image)
    return folder


def _two_series(folder: Path) -> Path:
    _dicom_series(folder, _ct_array(1), "1.2.826.0.1.3680043.8.498.2")
    return _dicom_series(folder, _ct_array(2), "1.2.826.0.1.3680043.8.498.3", first=100)


def _missing_slice(folder: Path) -> Path:
    return _dicom_series(folder, _ct_array(1), "1.2.826.0.1.3680043.8.498.4", skip=7)


class _Payload:
    """Unpickling this object runs ``exec``, which would create the marker file ``PWNED``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _checkpoint_variant(path: Path, a: Assets, change: Callable[[dict], object]) -> Path:
    torch.save(change(load_checkpoint(a.checkpoint)), path)
    return path


def _unet_config(ckpt: dict) -> dict:
    return {**ckpt, "model_config": {**ckpt["model_config"], "name": "unet", "direction": None}}


def _existing_predict_output(out: Path) -> Path:
    out.mkdir()
    (out / "labels.nii.gz").write_bytes(b"an earlier result")
    return out


def _existing_run(out: Path, a: Assets) -> Path:
    shutil.copytree(a.checkpoint.parent, out)
    return out


def _file(path: Path) -> Path:
    path.write_text("I am a file, not a folder\n")
    return path


def _pred_dir(root: Path, label: np.ndarray, case: str = "c1", **grid) -> Path:
    _save(root / "pred" / case / "labels.nii.gz", label, **grid)
    return root / "pred"


def _ref_dir(root: Path, a: Assets, case: str = "c1") -> Path:
    folder = root / "ref" / case
    folder.mkdir(parents=True)
    shutil.copy(a.case / "label.nii.gz", folder / "label.nii.gz")
    return root / "ref"


# ------------------------------------------------------------------------------------------ the table
Build = Callable[[Path, Assets], list[str]]


@dataclass(frozen=True)
class Row:
    """One bad input: ``build(tmp, assets)`` writes it and returns the ``sepnet`` arguments."""

    id: str
    build: Build
    culprit: str  # the offending path, relative to the work folder; the message must name it in full
    problem: str  # regular expression the message must match (case-insensitive)
    warn_only: bool = False  # the run goes on (exit 0) after one warning line
    sub: bool = False  # run as a separate process
    names_path: bool = True  # False: ``culprit`` is a word (a device), not a path
    marks: tuple = ()


def predict(input_path: Path, t: Path, a: Assets, *extra: str, models: list[Path] | None = None) -> list[str]:
    ckpts = [str(m) for m in (models or [a.checkpoint])]
    return ["predict", str(input_path), "-m", *ckpts, "-o", str(t / "out"), "--device", "cpu", *extra]


def train(data_root: Path, t: Path, *extra: str, out: Path | None = None) -> list[str]:
    return ["train", "--preset", "smoke", "--data-root", str(data_root), "--out", str(out or t / "run"),
            "--set", "epochs=1", *extra]


def evaluate(pred: Path, ref: Path, csv: Path) -> list[str]:
    return ["evaluate", str(pred), str(ref), "-o", str(csv)]


def phantom(out: Path, *extra: str) -> list[str]:
    return ["phantom", str(out), "--cases", "1", "--profile", "smoke", "--workers", "1", *extra]


ROWS: list[Row] = [
    # ---- missing paths and empty folders
    Row("missing_input", lambda t, a: predict(t / "absent.nii.gz", t, a), "absent.nii.gz", "does not exist",
        sub=True),
    Row("missing_checkpoint", lambda t, a: predict(a.ct, t, a, models=[t / "gone.pt"]), "gone.pt",
        "does not exist"),
    Row("missing_data_root", lambda t, a: train(t / "nowhere", t), "nowhere", "does not exist"),
    Row("empty_data_root", lambda t, a: train(_folder(t / "nothing"), t), "nothing", "empty"),
    Row("empty_split_folder", lambda t, a: train(_folder(t / "d" / "train").parent, t), "d/train",
        "no case folders"),
    Row("empty_prediction_folder", lambda t, a: evaluate(_folder(t / "pred"), _ref_dir(t, a), t / "m.csv"),
        "pred", "no predictions"),
    Row("empty_input_folder", lambda t, a: predict(_folder(t / "scan"), t, a), "scan", "no DICOM files"),
    # ---- files that are not (whole) 3D images
    Row("truncated_nii_gz", lambda t, a: predict(_truncated(t / "cut.nii.gz", a), t, a), "cut.nii.gz",
        "truncated", sub=True),
    Row("corrupt_nii_gz", lambda t, a: predict(_corrupt(t / "bad.nii.gz", a), t, a), "bad.nii.gz",
        "corrupt|truncated"),
    Row("not_an_image_nii_gz", lambda t, a: predict(_not_an_image(t / "notes.nii.gz"), t, a), "notes.nii.gz",
        "not a readable image"),
    Row("image_2d", lambda t, a: predict(_nib(t / "flat.nii.gz", np.zeros((32, 32), np.int16)), t, a),
        "flat.nii.gz", r"\b2D\b"),
    Row("image_4d", lambda t, a: predict(_nib(t / "dyn.nii.gz", np.zeros((32, 32, 16, 3), np.int16)), t, a),
        "dyn.nii.gz", r"\b4D\b"),
    Row("label_4d", lambda t, a: train(_dataset(t / "d", a, lambda f: _nib(
        _case(f, a) / "label.nii.gz", np.zeros((32, 32, 16, 2), np.uint8)).parent), t),
        "d/train/p1/label.nii.gz", r"\b4D\b"),
    # ---- grids and values
    Row("label_shape_mismatch", lambda t, a: train(_dataset(t / "d", a, lambda f: _case(
        f, a, np.zeros((16, 32, 30), np.uint8))), t), "d/train/p1/label.nii.gz", "shape", sub=True),
    Row("label_affine_mismatch", lambda t, a: train(_dataset(t / "d", a, lambda f: _case(
        f, a, origin=(0.0, 0.0, 0.0))), t), "d/train/p1/label.nii.gz", "origin"),
    Row("label_spacing_mismatch", lambda t, a: train(_dataset(t / "d", a, lambda f: _case(
        f, a, spacing_xyz=(1.0, 1.0, 3.0))), t), "d/train/p1/label.nii.gz", "spacing"),
    Row("label_values_above_22", lambda t, a: train(_dataset(t / "d", a, lambda f: _case(
        f, a, _label_array() * 15)), t), "d/train/p1/label.nii.gz", r"outside 0\.\.22"),
    Row("prediction_shape_mismatch", lambda t, a: evaluate(
        _pred_dir(t, np.zeros((16, 32, 30), np.uint8)), _ref_dir(t, a), t / "m.csv"),
        "pred/c1/labels.nii.gz", "shape"),
    Row("prediction_affine_mismatch", lambda t, a: evaluate(
        _pred_dir(t, _label_array(), origin=(5.0, -30.0, 10.0)), _ref_dir(t, a), t / "m.csv"),
        "pred/c1/labels.nii.gz", "origin"),
    Row("prediction_values_above_22", lambda t, a: evaluate(
        _pred_dir(t, _label_array() * 40), _ref_dir(t, a), t / "m.csv"),
        "pred/c1/labels.nii.gz", r"outside 0\.\.22"),
    Row("nan_intensity", lambda t, a: predict(_with_value(t / "nan.nii.gz", np.nan), t, a), "nan.nii.gz",
        "non-finite"),
    Row("infinite_intensity", lambda t, a: predict(_with_value(t / "inf.nii.gz", np.inf), t, a),
        "inf.nii.gz", "non-finite"),
    Row("nan_in_training_case", lambda t, a: train(_dataset(t / "d", a, lambda f: _nan_case(f, a)), t),
        "d/train/p1/data.nii.gz", "non-finite"),
    Row("intensities_0_to_1_warn", lambda t, a: predict(_save(
        t / "norm.nii.gz", np.random.default_rng(0).random(SHAPE).astype(np.float32)), t, a),
        "norm.nii.gz", "normalised", warn_only=True),
    # ---- DICOM input
    Row("dicom_two_series", lambda t, a: predict(_two_series(t / "dicom"), t, a), "dicom", "2 DICOM series"),
    Row("dicom_missing_slice", lambda t, a: predict(_missing_slice(t / "dicom"), t, a), "dicom",
        r"miss(es|ing) 1 slice"),
    # ---- checkpoints
    Row("checkpoint_not_ours", lambda t, a: predict(a.ct, t, a, models=[_torch_file(t / "resnet.pt")]),
        "resnet.pt", "not a SepNet-Book checkpoint"),
    Row("checkpoint_bare_state_dict", lambda t, a: predict(a.ct, t, a, models=[_checkpoint_variant(
        t / "weights.pt", a, lambda c: c["model_state"])]), "weights.pt", "not a SepNet-Book checkpoint"),
    Row("checkpoint_of_another_model", lambda t, a: predict(a.ct, t, a, models=[_checkpoint_variant(
        t / "unet.pt", a, _unet_config)]), "unet.pt", "do not match"),
    Row("checkpoint_newer_format", lambda t, a: predict(a.ct, t, a, models=[_checkpoint_variant(
        t / "future.pt", a, lambda c: {**c, "format_version": FORMAT_VERSION + 1})]), "future.pt", "newer"),
    Row("checkpoint_truncated", lambda t, a: predict(a.ct, t, a, models=[_cut_checkpoint(t / "cut.pt", a)]),
        "cut.pt", "not a readable checkpoint"),
    Row("checkpoint_runs_code", lambda t, a: predict(a.ct, t, a, models=[_evil(t / "evil.pt", t)]),
        "evil.pt", "refused", sub=True),
    Row("checkpoint_in_training_run", lambda t, a: train(_dataset(t / "d", a), t, "--resume", out=_evil_run(
        t / "run", a, t)), "run/last.pt", "refused"),
    # ---- outputs
    Row("predict_output_exists", lambda t, a: predict(a.ct, _existing_predict_output(t / "out").parent, a),
        "out", "--force"),  # predict writes into t / "out"
    Row("train_output_exists", lambda t, a: train(_dataset(t / "d", a), t, out=_existing_run(t / "run", a)),
        "run", "already holds a run"),
    Row("evaluate_output_exists", lambda t, a: evaluate(
        _pred_dir(t, _label_array()), _ref_dir(t, a), _file(t / "m.csv")), "m.csv", "--force"),
    Row("phantom_output_exists", lambda t, a: phantom(_existing_predict_output(t / "ph")), "ph", "not empty"),
    Row("predict_output_unwritable", lambda t, a: predict(a.ct, _file(t / "blocker"), a), "blocker",
        "file|not a directory"),
    Row("train_output_unwritable", lambda t, a: train(
        _dataset(t / "d", a), t, out=_file(t / "blocker") / "run"), "blocker", "file|not a directory"),
    Row("evaluate_output_unwritable", lambda t, a: evaluate(
        _pred_dir(t, _label_array()), _ref_dir(t, a), _file(t / "blocker") / "sub" / "m.csv"), "blocker",
        "file|not a directory"),
    Row("phantom_output_unwritable", lambda t, a: phantom(_file(t / "blocker") / "ph"), "blocker",
        "file|not a directory"),
    Row("train_unavailable_device", lambda t, a: train(_dataset(t / "d", a), t, "--set", "device=cuda"),
        "cuda", "no CUDA device", names_path=False,
        marks=(pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA"),)),
    # ---- names that could leave their folder
    Row("case_name_with_backslash", lambda t, a: train(_dataset(t / "d", a, name="a\\..\\b"), t),
        "d/train/a\\..\\b", "path separator"),
    Row("split_name_dotdot", lambda t, a: train(_dataset(t / "d", a), t, "--set", "data.train_split=.."),
        "d/..", "single folder name"),
    Row("split_name_with_slash", lambda t, a: train(_dataset(t / "d", a), t, "--set",
                                                    "data.valid_split=../../etc"), "d/../../etc",
        "path separator"),
    Row("evaluate_case_name_with_backslash", lambda t, a: evaluate(
        _pred_dir(t, _label_array(), case="x\\..\\c1"), _ref_dir(t, a, case="x\\..\\c1"), t / "m.csv"),
        "pred/x\\..\\c1/labels.nii.gz", "path separator"),
    # ---- options of issue 17: inputs, folders of cases, devices, organs
    Row("models_would_swallow_the_ct", lambda t, a: ["predict", "-m", str(a.checkpoint), str(_copy(a.ct, t)),
                                                     "-o", str(t / "out")], "ct.nii.gz",
        "not a checkpoint file name", sub=True),
    Row("predict_no_input", lambda t, a: ["predict", "-m", str(a.checkpoint), "-o", str(t / "out")], "INPUT",
        "no input given", sub=True, names_path=False),
    Row("predict_unknown_device", lambda t, a: predict(a.ct, t, a, "--device", "gpu"), "gpu",
        "unknown device", sub=True, names_path=False),
    Row("predict_unavailable_cuda_index", lambda t, a: predict(a.ct, t, a, "--device", "cuda:7"), "cuda:7",
        "CUDA device", names_path=False,
        marks=(pytest.mark.skipif(torch.cuda.device_count() > 7, reason="needs fewer than 8 CUDA devices"),)),
    Row("predict_unknown_organ", lambda t, a: predict(a.ct, t, a, "--roi-subset", "spleen"), "spleen",
        "invalid choice", sub=True, names_path=False),
    Row("folder_case_output_exists", lambda t, a: predict(
        _cases(t / "cases", a), _existing_predict_output(_folder(t / "out") / "c1").parents[1], a),
        "out/c1", "--force"),
    Row("folder_with_a_corrupt_second_case", lambda t, a: predict(_cases(t / "cases", a, corrupt="c2"), t, a),
        "cases/c2.nii.gz", "not a valid|corrupt|cannot|gzip|read"),
    Row("two_inputs_same_case_name", lambda t, a: predict(a.ct, t, a, "-i", str(_copy(a.ct, t / "x"))),
        "x/ct.nii.gz", "collide"),
    Row("phantom_two_output_folders", lambda t, a: phantom(t / "ph", "-o", str(t / "ph2")), "-o OUT_DIR",
        "once", sub=True, names_path=False),
]


def _copy(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(path, folder / path.name))


def _cases(folder: Path, a: Assets, corrupt: str | None = None) -> Path:
    """A folder of two NIfTI cases c1, c2 (``corrupt``: that one is a corrupt .nii.gz)."""
    folder.mkdir(parents=True)
    for name in ("c1", "c2"):
        if name == corrupt:
            _corrupt(folder / f"{name}.nii.gz", a)
        else:
            shutil.copy(a.ct, folder / f"{name}.nii.gz")
    return folder


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _nan_case(folder: Path, a: Assets) -> Path:
    _case(folder, a)
    _with_value(folder / "data.nii.gz", np.nan)
    return folder


def _torch_file(path: Path) -> Path:
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3), "fc.bias": torch.zeros(10)}, path)
    return path


def _cut_checkpoint(path: Path, a: Assets) -> Path:
    data = a.checkpoint.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _evil(path: Path, t: Path) -> Path:
    torch.save({"format_version": 1, "model_state": {}, "payload": _Payload(t / "PWNED")}, path)
    return path


def _evil_run(out: Path, a: Assets, t: Path) -> Path:
    _existing_run(out, a)
    config = preset("smoke", data_root=str(t / "d"), epochs=1)
    (out / "config.json").write_text(config.to_json())
    _evil(out / "last.pt", t)
    return out


# ----------------------------------------------------------------------------------------- the check
def _snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with the SHA-256 of its bytes ("dir" for a folder)."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def _run(argv: list[str], sub: bool, capsys) -> tuple[int, str, str]:
    if sub:
        result = subprocess.run([sys.executable, "-m", "sepnet_core.cli", *argv], capture_output=True,
                                text=True, timeout=120, cwd=REPO, env=_env())
        return result.returncode, result.stdout, result.stderr
    capsys.readouterr()
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id, marks=r.marks) for r in ROWS])
def test_bad_input_fails_loudly_in_one_line(row: Row, assets: Assets, tmp_path: Path, capsys) -> None:
    work = tmp_path / "work"
    work.mkdir()
    argv = row.build(work, assets)
    before = _snapshot(work)
    code, out, err = _run(argv, row.sub, capsys)

    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"stderr must be one line, got:\n{err}"
    line = lines[0]
    kind = "warning" if row.warn_only else "error"
    assert line.startswith(f"sepnet {argv[0]}: {kind}: "), line
    culprit = str(work / row.culprit) if row.names_path else row.culprit
    assert culprit in line, f"{culprit!r} not named in: {line}"
    assert re.search(row.problem, line, re.IGNORECASE), f"{row.problem!r} not in: {line}"
    assert not (work / "PWNED").exists(), "a checkpoint ran code while loading"
    after = _snapshot(work)
    if row.warn_only:
        assert code == 0, err
        new = sorted(set(after) - set(before))
        assert new[:2] == ["out", "out/labels.nii.gz"] and _are_outputs(new[1:]), new
        assert {k: v for k, v in after.items() if k in before} == before
    else:
        assert code == 2, (code, out, err)
        assert after == before, f"left behind or changed: {sorted(set(after) ^ set(before))}"


def test_a_good_run_is_quiet_on_stderr(assets: Assets, tmp_path: Path, capsys) -> None:
    """The control row: the same command with good input exits 0 and writes nothing on stderr."""
    code, out, err = _run(predict(assets.ct, tmp_path, assets), False, capsys)
    assert code == 0 and err == "", err
    assert "wrote" in out
    written = sorted(f"out/{p.name}" for p in (tmp_path / "out").iterdir())
    assert "out/labels.nii.gz" in written and _are_outputs(written), written


def _are_outputs(paths: list[str]) -> bool:
    """All ``out/<name>`` with ``name`` one of predict's documented outputs (no temporary files)."""
    from sepnet_core.commands.predict import OUTPUT_NAMES

    return all(p.startswith("out/") and p[4:] in OUTPUT_NAMES for p in paths)


"""``sepnet predict``: outputs on the input's grid, summary, refusal, all-or-nothing, strict parsing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
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


def test_ensemble_outputs_lie_on_the_input_grid_and_summary_describes_them(files, tmp_path, capsys):
    out_a, out_b, out_c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for ct, out in ((files["a"], out_a), (files["b"], out_b), (files["c"], out_c)):
        assert cli.main(["predict", str(ct), "-m", *files["ckpts"], "-o", str(out), "--device", "cpu"]) == 0
        assert sorted(p.name for p in out.iterdir()) == ["labels.nii.gz", "summary.json",
                                                         "uncertainty.nii.gz"]
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

    summary = json.loads((out_a / "summary.json").read_text())
    assert summary["outputs"]["uncertainty_kind"] == "vote_entropy"
    assert summary["inference"] == {"mode": "gaussian", "overlap": 0.5, "batch_size": 1, "device": "cpu",
                                    "fusion": "argmax of the mean probability"}
    for entry, ckpt in zip(summary["checkpoints"], files["ckpts"], strict=True):
        assert entry["sha256"] == hashlib.sha256(Path(ckpt).read_bytes()).hexdigest()
        assert entry["patch_size"] == [8, 32, 32]
    assert [c["crop_yx"] for c in summary["checkpoints"]] == [None, [16, 16]]
    voxel_ml = np.prod(SPACING_XYZ) / 1000
    for organ in ORGANS:
        entry = summary["organs"][organ.key]
        mask = labels_a == organ.label
        assert entry["voxels"] == int(mask.sum())
        assert entry["volume_ml"] == pytest.approx(mask.sum() * voxel_ml)
        if mask.any():
            assert entry["mean_uncertainty"] == pytest.approx(float(unc_a[mask].mean()), rel=1e-5)
        else:
            assert entry["mean_uncertainty"] is None
    assert summary["input"]["path"] == str(files["a"].resolve())
    assert summary["run_time_s"]["total"] > 0
    assert "wrote" in capsys.readouterr().out


def test_single_checkpoint_writes_predictive_entropy(files, tmp_path):
    out = tmp_path / "single"
    args = ["predict", str(files["a"]), "-m", files["ckpts"][0], "-o", str(out), "--mode", "reference"]
    assert cli.main([*args, "--batch-size", "3"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outputs"]["uncertainty_kind"] == "predictive_entropy"
    assert summary["inference"]["mode"] == "reference" and summary["inference"]["overlap"] is None
    unc = read_array(out / "uncertainty.nii.gz")
    assert unc.min() >= 0 and unc.max() <= np.log(23) + 1e-5 and len(np.unique(unc)) > 10


def test_existing_outputs_are_refused_without_force(files, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["predict", str(files["a"]), "-m", files["ckpts"][0], "-o", str(out)]
    assert cli.main(args) == 0
    (out / "summary.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert cli.main(args) == 2
    assert "--force" in one_line_error(capsys)
    assert (out / "summary.json").read_text() == "{}"
    assert cli.main([*args, "--force"]) == 0
    assert json.loads((out / "summary.json").read_text())["sepnet_version"]
    assert (out / "notes.txt").read_text() == "mine"
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
                     "--force"):
        assert fragment in text

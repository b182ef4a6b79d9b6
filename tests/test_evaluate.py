"""``sepnet evaluate`` and sepnet_core.evaluation: matching, known Dice/HD95, outputs, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sepnet_core import cli
from sepnet_core.data.io import Geometry, write_image
from sepnet_core.evaluation import evaluate_folders, find_predictions
from sepnet_core.metrics import TABLE_COLUMNS

# (z, y, x) spacing: a one-slice shift is 3 mm, a one-column shift 0.7 mm.
GEOMETRY = Geometry(shape=(12, 10, 16), spacing_mm=(3.0, 1.0, 0.7), origin=(5.0, -3.0, 20.0))


def reference() -> np.ndarray:
    """Organ 1: a 4-slice column of 2 x 2 voxels (every voxel on its surface); organ 2 likewise."""
    label = np.zeros(GEOMETRY.shape, np.uint8)
    label[2:6, 2:4, 2:4] = 1
    label[5:9, 6:8, 5:7] = 2
    return label


def shifted() -> np.ndarray:
    """Organ 1 one slice up (+3 mm), organ 2 one column right (+0.7 mm)."""
    label = np.zeros(GEOMETRY.shape, np.uint8)
    label[3:7, 2:4, 2:4] = 1
    label[5:9, 6:8, 6:8] = 2
    return label


def write_label(path: Path, label: np.ndarray, geometry: Geometry = GEOMETRY) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image(path, label, geometry, dtype=np.uint8)


@pytest.fixture
def ref_dir(tmp_path):
    for case in ("case1", "case2"):
        write_label(tmp_path / "valid" / case / "label.nii.gz", reference())
    return tmp_path / "valid"


def test_perfect_and_shifted_predictions_give_known_scores(ref_dir, tmp_path, capsys):
    pred = tmp_path / "pred"
    write_label(pred / "case1" / "labels.nii.gz", reference())  # predict's layout
    write_label(pred / "case2.nii.gz", shifted())  # plain files
    csv = tmp_path / "out" / "metrics.csv"
    assert cli.main(["evaluate", str(pred), str(ref_dir), "-o", str(csv)]) == 0
    table = pd.read_csv(csv)
    assert list(table.columns) == list(TABLE_COLUMNS) and len(table) == 44
    rows = table.set_index(["case", "label"])
    assert rows.loc[("case1", 1), "dice"] == 1.0 and rows.loc[("case1", 1), "hd95"] == 0.0
    assert rows.loc[("case1", 2), "dice"] == 1.0 and rows.loc[("case1", 2), "hd95"] == 0.0
    # 16 voxels each: 12 of 16 shared (z shift) and 8 of 16 (x shift).
    assert rows.loc[("case2", 1), "dice"] == pytest.approx(0.75)
    assert rows.loc[("case2", 1), "hd95"] == pytest.approx(3.0)
    assert rows.loc[("case2", 2), "dice"] == pytest.approx(0.5)
    assert rows.loc[("case2", 2), "hd95"] == pytest.approx(0.7)
    assert rows.loc[("case1", 1), "volume_ref_ml"] == pytest.approx(16 * 3.0 * 1.0 * 0.7 / 1000)
    assert math.isnan(rows.loc[("case1", 3), "dice"])  # absent on both sides
    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert summary["n_cases"] == 2 and summary["cases"] == ["case1", "case2"]
    assert summary["mean_dice"] == pytest.approx(((1 + 0.75) / 2 + (1 + 0.5) / 2) / 2)
    assert summary["weighted_dice"] == pytest.approx(((1 + 0.75) / 2 * 100 + (1 + 0.5) / 2 * 100) / 200)
    assert summary["weighted_hd95"] == pytest.approx((1.5 + 0.35) / 2)
    assert "weighted Dice 0.8125" in capsys.readouterr().out


def test_missing_cases_fail_in_one_line_unless_allowed(ref_dir, tmp_path, capsys):
    pred = tmp_path / "pred"
    write_label(pred / "case1.nii.gz", reference())
    write_label(pred / "case9.nii.gz", reference())
    csv = tmp_path / "m.csv"
    assert cli.main(["evaluate", str(pred), str(ref_dir), "-o", str(csv)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "case2" in err and "case9" in err
    assert not csv.exists()
    summary_path = tmp_path / "s.json"
    args = ["evaluate", str(pred), str(ref_dir), "-o", str(csv), "--summary", str(summary_path)]
    assert cli.main([*args, "--allow-missing"]) == 0
    summary = json.loads(summary_path.read_text())
    assert summary["cases"] == ["case1"] and summary["missing_predictions"] == ["case2"]
    assert summary["missing_references"] == ["case9"] and summary["weighted_dice"] == 1.0


def test_existing_outputs_are_refused_without_force(ref_dir, tmp_path, capsys):
    pred = tmp_path / "pred"
    for case in ("case1", "case2"):
        write_label(pred / f"{case}.nii.gz", reference())
    csv = tmp_path / "m.csv"
    (tmp_path / "m.json").write_text("old")
    assert cli.main(["evaluate", str(pred), str(ref_dir), "-o", str(csv)]) == 2
    assert "--force" in capsys.readouterr().err
    assert not csv.exists() and (tmp_path / "m.json").read_text() == "old"
    assert cli.main(["evaluate", str(pred), str(ref_dir), "-o", str(csv), "--force"]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["n_cases"] == 2


def test_prediction_on_another_grid_is_an_error_naming_the_file(ref_dir, tmp_path, capsys):
    pred = tmp_path / "pred"
    write_label(pred / "case1.nii.gz", reference())
    moved = Geometry(shape=GEOMETRY.shape, spacing_mm=GEOMETRY.spacing_mm, origin=(0.0, 0.0, 0.0))
    write_label(pred / "case2.nii.gz", reference(), moved)
    assert cli.main(["evaluate", str(pred), str(ref_dir), "-o", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert "case2.nii.gz" in err and "origin" in err


def test_find_predictions_rejects_a_case_given_twice_and_ignores_other_files(tmp_path):
    write_label(tmp_path / "a" / "labels.nii.gz", reference())
    (tmp_path / "metrics.csv").write_text("x")
    (tmp_path / ".tmp-123-b.nii.gz").write_text("partial")
    assert list(find_predictions(tmp_path)) == ["a"]
    write_label(tmp_path / "a.nii.gz", reference())
    with pytest.raises(ValueError, match="two predictions"):
        find_predictions(tmp_path)


def test_empty_or_missing_folders(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no predictions"):
        evaluate_folders(tmp_path / "empty", tmp_path / "empty")
    assert cli.main(["evaluate", str(tmp_path / "nope"), str(tmp_path), "-o", str(tmp_path / "m.csv")]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--allow-mising"], ["--summ", "x.json"], ["-o"]])
def test_strict_parsing(tmp_path, extra):
    output = ["-o", str(tmp_path / "m.csv")] if extra != ["-o"] else []
    args = ["evaluate", str(tmp_path), str(tmp_path), *output]
    with pytest.raises(SystemExit) as exc:
        cli.main([*args, *extra])
    assert exc.value.code == 2


def test_help_states_units_and_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for fragment in ("HD95 in mm", "ml", "default: the CSV path with suffix .json", "--allow-missing"):
        assert fragment in text

"""The trained-model gate (sepnet_core.analysis.gate) and learning curves (sepnet_core.analysis.curves),
on constructed logs and metrics tables."""

from __future__ import annotations

import csv
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sepnet_core.analysis.curves import CURVE_COLUMNS, plot_curves, read_curve, validation_points
from sepnet_core.analysis.gate import GATE_COLUMNS, GateThresholds, curve_gain, foreground_volumes, gate_runs
from sepnet_core.training import LOG_COLUMNS


def curve(scores, every=1, steps_per_epoch=30):
    """A log-like curve: one row per epoch, validation scores every ``every`` epochs (NaN between)."""
    rows = []
    for i, score in enumerate(np.repeat(scores, every)):
        epoch = i + 1
        validated = epoch % every == 0
        rows.append({"epoch": epoch, "step": epoch * steps_per_epoch,
                     "val_mean_dice": score if validated else math.nan})
    return pd.DataFrame(rows)


def volumes(*ratios, ref=300.0):
    """Organ-level metrics rows: two organs per case whose volumes sum to ``ratio x ref``."""
    rows = []
    for i, ratio in enumerate(ratios):
        for part in (0.25, 0.75):
            rows.append({"case": f"case_{i}", "label": 1 if part < 0.5 else 2, "volume_ref_ml": part * ref,
                         "volume_pred_ml": part * ref * ratio})
    return pd.DataFrame(rows)


# 8 validations at steps 30..240: the last quarter starts at step 180 (the 6th point)
RISING = [0.1, 0.3, 0.45, 0.55, 0.62, 0.68, 0.72, 0.75]           # last quarter: +0.07 (0.68 -> 0.75)
FLAT = [0.1, 0.3, 0.5, 0.62, 0.70, 0.71, 0.715, 0.72]              # last quarter: +0.01
LOW_FLAT = [0.1, 0.3, 0.5, 0.58, 0.60, 0.61, 0.612, 0.615]         # flat but below 0.65

CASES = [
    # (name, scores, volume ratios, atlas, expected (flattened, accurate, volumes_ok), words in the verdict)
    ("trained", FLAT, (1.1, 0.8), 0.31, (True, True, True), ["trained"]),
    ("still rising", RISING, (1.0, 1.0), 0.31, (False, True, True), ["still learning", "+0.070"]),
    ("flat but low", LOW_FLAT, (1.0, 1.0), 0.31, (True, False, True), ["0.615 < 0.650"]),
    ("atlas too close", FLAT, (1.0, 1.0), 0.50, (True, False, True), ["0.720 < 0.750", "atlas 0.500"]),
    ("organ everywhere", FLAT, (43.0, 1.1), 0.31, (True, True, False),
     ["1 of 2 test case(s)", "case_0 43.00x"]),
    ("volume edge", FLAT, (1.29, 0.71), 0.31, (True, True, True), ["trained"]),
    ("volume just over", FLAT, (1.31, 1.0), 0.31, (True, True, False), ["30%"]),
    ("no atlas", FLAT, (1.0,), None, (True, False, True), ["no atlas baseline"]),
    ("nothing", [0.1, 0.12], (40.0,), 0.31, (True, False, False), ["0.120 < 0.650", "volume"]),
]


@pytest.mark.parametrize("name, scores, ratios, atlas, expected, words", CASES, ids=[c[0] for c in CASES])
def test_gate_table(name, scores, ratios, atlas, expected, words):
    table = gate_runs({name: (curve(scores), volumes(*ratios))}, atlas_dice=atlas)
    assert list(table.columns) == list(GATE_COLUMNS)
    row = table.iloc[0]
    assert (row["flattened"], row["accurate"], row["volumes_ok"]) == expected
    assert row["trained"] == all(expected)
    assert row["verdict"].startswith("trained" if all(expected) else "inconclusive: not trained — ")
    for word in words:
        assert word in row["verdict"], (word, row["verdict"])
    assert row["best_val_dice"] == pytest.approx(max(scores))


def test_curve_gain_uses_the_last_validation_before_the_last_quarter():
    # 12 epochs of 30 steps, validated every 3 epochs: steps 90, 180, 270, 360; the last quarter starts at
    # step 270, so the gain is score(360) - score(270).
    gain, problem = curve_gain(curve([0.2, 0.5, 0.6, 0.64], every=3))
    assert problem == "" and gain == pytest.approx(0.04)
    assert curve_gain(curve([0.2, 0.5, 0.6, 0.64], every=3), last_fraction=0.5)[0] == pytest.approx(0.14)


LATE = pd.DataFrame({"step": [30, 60, 200, 240], "val_mean_dice": [math.nan, math.nan, 0.2, 0.7]})
EARLY = pd.DataFrame({"step": [30, 60, 200, 240], "val_mean_dice": [0.2, 0.7, math.nan, math.nan]})


@pytest.mark.parametrize(("data", "reason"), [
    (curve([0.5]), "1 validation point"),
    (LATE, "no validation at or before step 180"),
    (EARLY, "no validation in the last quarter"),
])
def test_curve_without_enough_points_fails_with_the_reason(data, reason):
    gain, problem = curve_gain(data)
    assert math.isnan(gain) and reason in problem
    row = gate_runs({"r": (data, volumes(1.0))}, atlas_dice=0.3).iloc[0]
    assert not row["flattened"] and not row["trained"] and reason in row["verdict"]


def test_custom_thresholds_and_missing_volumes():
    loose = GateThresholds(max_gain=0.1, min_dice=0.5, over_atlas=0.1, volume_tolerance=0.5)
    row = gate_runs({"r": (curve(RISING), volumes(1.4))}, atlas_dice=0.31, thresholds=loose).iloc[0]
    assert row["trained"] and row["dice_needed"] == pytest.approx(0.5)
    row = gate_runs({"r": (curve(FLAT), None)}, atlas_dice=0.31).iloc[0]
    assert not row["volumes_ok"] and "no test-case volumes" in row["verdict"]


def test_foreground_volumes_sum_organs_per_case():
    table = foreground_volumes(volumes(2.0, 0.5))
    assert list(table["case"]) == ["case_0", "case_1"]
    assert table["volume_ref_ml"].tolist() == pytest.approx([300.0, 300.0])
    assert table["ratio"].tolist() == pytest.approx([2.0, 0.5])
    with pytest.raises(ValueError, match="volume_pred_ml"):
        foreground_volumes(pd.DataFrame({"case": ["a"], "volume_ref_ml": [1.0]}))


# ----------------------------------------------------------------------------------------- curves
def write_log(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in LOG_COLUMNS})


def test_read_curve_from_a_run_folder_or_file(tmp_path):
    rows = [{"epoch": e, "step": 30 * e, "lr": 0.01 / e, "train_loss": 2.0 / e, "seconds": 10.0,
             "val_mean_dice": 0.1 * e if e % 2 == 0 else ""} for e in (1, 2, 3, 4)]
    write_log(tmp_path / "log.csv", rows)
    table = read_curve(tmp_path)
    assert list(table.columns) == list(CURVE_COLUMNS)
    assert table["elapsed_s"].tolist() == [10.0, 20.0, 30.0, 40.0]
    assert table["validated"].tolist() == [False, True, False, True]
    points = validation_points(read_curve(tmp_path / "log.csv"))
    assert points["step"].tolist() == [60, 120]
    assert points["val_mean_dice"].tolist() == pytest.approx([0.2, 0.4])
    # the gate reads the same table
    assert curve_gain(table)[0] == pytest.approx(0.2)


def test_read_curve_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="log.csv"):
        read_curve(tmp_path)
    (tmp_path / "log.csv").write_text("epoch,step\n1,30\n")
    with pytest.raises(ValueError, match=r"log.csv: not a training log.*train_loss"):
        read_curve(tmp_path)


def test_plot_curves_draws_one_line_per_run(tmp_path):
    curves = {}
    for name, scores in (("a", FLAT), ("b", RISING)):
        data = curve(scores)
        data["train_loss"] = np.linspace(2, 1, len(data))
        curves[name] = data
    fig = plot_curves(curves, title="runs", dice_threshold=0.65)
    assert isinstance(fig, Figure)
    dice_ax, loss_ax = fig.axes
    assert [line.get_label() for line in dice_ax.get_lines()[:2]] == ["a", "b"]
    assert dice_ax.get_lines()[1].get_ydata().tolist() == pytest.approx(RISING)
    assert len(loss_ax.get_lines()) == 2
    with pytest.raises(ValueError, match="at least one"):
        plot_curves({})


def test_docstring_example_runs():
    import doctest

    from sepnet_core.analysis import gate

    result = doctest.testmod(gate, verbose=False)
    assert result.failed == 0 and result.attempted > 0

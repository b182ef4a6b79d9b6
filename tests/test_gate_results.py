"""The trained-model gate read from committed results folders (sepnet_core.analysis.gate): log.csv,
test_metrics.csv and the data stage's atlas_baseline.json, on constructed folders."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from sepnet_core.analysis.gate import gate_by_config, gate_result_folders, read_atlas_dice
from sepnet_core.training import LOG_COLUMNS


def write_run(folder, scores, ratios, steps_per_epoch=30):
    """A results folder as the training stage writes it: log.csv (all LOG_COLUMNS) + test_metrics.csv."""
    folder.mkdir(parents=True)
    rows = []
    for i, score in enumerate(scores):
        row = dict.fromkeys(LOG_COLUMNS, math.nan)
        row.update(epoch=i + 1, step=(i + 1) * steps_per_epoch, lr=1e-2, train_loss=1.0 / (i + 1),
                   val_mean_dice=score, seconds=20.0)
        rows.append(row)
    pd.DataFrame(rows, columns=list(LOG_COLUMNS)).to_csv(folder / "log.csv", index=False)
    metrics = [{"case": f"c{k}", "label": label, "organ": f"o{label}", "dice": 0.7, "hd95": 3.0,
                "volume_ref_ml": 50.0, "volume_pred_ml": 50.0 * ratio}
               for k, ratio in enumerate(ratios) for label in (1, 2)]
    pd.DataFrame(metrics).to_csv(folder / "test_metrics.csv", index=False)
    return folder


FLAT = [0.2, 0.5, 0.68, 0.72, 0.73, 0.735, 0.74, 0.74]
RISING = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


def test_read_atlas_dice(tmp_path):
    assert read_atlas_dice(tmp_path) is None  # the data stage wrote no atlas score
    (tmp_path / "atlas_baseline.json").write_text(json.dumps({"mean_dice": 0.31, "n_cases": 20}))
    assert read_atlas_dice(tmp_path) == pytest.approx(0.31)
    assert read_atlas_dice(tmp_path / "atlas_baseline.json") == pytest.approx(0.31)
    (tmp_path / "atlas_baseline.json").write_text(json.dumps({"mean_dice": None}))
    with pytest.raises(ValueError, match="atlas_baseline.json: mean_dice"):
        read_atlas_dice(tmp_path)


def test_gate_from_folders_and_by_config(tmp_path):
    folders = {
        "good_s0": write_run(tmp_path / "train_good_s0", FLAT, (1.0, 1.2)),
        "good_s1": write_run(tmp_path / "train_good_s1", FLAT, (0.9, 1.1)),
        "rising_s0": write_run(tmp_path / "train_rising_s0", RISING, (1.0, 1.0)),
        "everywhere_s0": write_run(tmp_path / "train_everywhere_s0", FLAT, (1.0, 40.0)),
        "unfinished_s0": tmp_path / "train_unfinished_s0",  # the stage failed: no results at all
    }
    table = gate_result_folders(folders, atlas_dice=0.31)
    assert list(table["run"]) == list(folders)
    assert list(table["trained"]) == [True, True, False, False, False]
    verdicts = dict(zip(table["run"], table["verdict"], strict=True))
    assert "still learning" in verdicts["rising_s0"]
    assert "c1 40.00x" in verdicts["everywhere_s0"]
    assert "validation point" in verdicts["unfinished_s0"]
    assert "no test-case volumes" in verdicts["unfinished_s0"]
    # the atlas moves criterion (b): 0.74 best needs atlas <= 0.49
    assert not gate_result_folders({"good_s0": folders["good_s0"]}, atlas_dice=0.5)["trained"].iloc[0]
    assert "no atlas" in gate_result_folders({"good_s0": folders["good_s0"]}, None)["verdict"].iloc[0]

    gate = gate_by_config(table, {"good": ["good_s0", "good_s1"], "mixed": ["good_s0", "rising_s0"],
                                  "ghost": ["never_trained_s0"]}, members=["good_s0", "good_s1"])
    assert gate["good"] and not gate["mixed"] and not gate["ghost"] and gate["ensemble"]
    assert gate["good_s1"] and not gate["everywhere_s0"]
    assert not gate_by_config(table, members=["good_s0", "everywhere_s0"])["ensemble"]
    assert "ensemble" not in gate_by_config(table)


def test_curve_panels_one_per_configuration(tmp_path):
    from sepnet_core.analysis.curves import plot_curve_panels, read_curve

    a = read_curve(write_run(tmp_path / "a_s0", FLAT, (1.0,)))
    b = read_curve(write_run(tmp_path / "a_s1", RISING, (1.0,)))
    fig = plot_curve_panels({"config a": {"s0": a, "s1": b}, "config b": {"s0": b}, "config c": {"s0": a}},
                            columns=2, dice_threshold=0.65)
    assert len(fig.axes) == 3  # the fourth grid cell is removed
    assert [ax.get_title() for ax in fig.axes] == ["config a", "config b", "config c"]
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3 and list(lines[1].get_ydata()) == RISING  # two runs + the threshold
    with pytest.raises(ValueError, match="without runs"):
        plot_curve_panels({"x": {}})


def test_headline_figure_draws_contours_and_uncertainty():
    import numpy as np

    from sepnet_core.analysis.reader import reference_slices
    from sepnet_core.analysis.slice_plots import headline_figure

    ref = np.zeros((6, 20, 20), dtype=np.uint8)
    ref[2:5, 5:9, 4:8] = 2   # eye_l
    ref[1:5, 10:15, 3:7] = 12  # parotid_l
    ref[0:6, 8:12, 9:12] = 1  # brain stem
    pred = np.roll(ref, 1, axis=2)
    unc = np.where(pred != ref, 0.69, 0.0)
    image = np.where(ref > 0, 40.0, -1000.0)
    views = reference_slices(ref)[1:]
    fig = headline_figure(image, ref, pred, unc, views, (3.0, 1.0, 1.0), title="case")
    assert len(fig.axes) == 2 * 2 + 1  # two panels per view and the colour bar
    assert "uncertainty" in fig.axes[1].get_title() and "dashed" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="one shape"):
        headline_figure(image, ref, pred[:3], unc, views, (3.0, 1.0, 1.0))


def test_gate_groups_of_an_ablation_page(tmp_path):
    from sepnet_core.analysis.gate import gate_groups

    good = [write_run(tmp_path / f"train_good_s{s}", FLAT, (1.0,)) for s in (0, 1)]
    bad = write_run(tmp_path / "train_bad_s0", RISING, (1.0,))
    data = tmp_path / "data"
    data.mkdir()
    (data / "atlas_baseline.json").write_text(json.dumps({"mean_dice": 0.3}))
    table, gate = gate_groups({"A": good, "B": [bad], "A again": good[:1]}, data)
    assert list(table["run"]) == ["good_s0", "good_s1", "bad_s0"]  # each run once
    assert gate == {"good_s0": True, "good_s1": True, "bad_s0": False, "A": True, "B": False, "A again": True}
    table, gate = gate_groups({"A": good}, None)  # no atlas: (b) cannot pass
    assert not gate["A"] and "no atlas" in table["verdict"].iloc[0]

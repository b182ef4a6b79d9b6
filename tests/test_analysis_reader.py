"""What the reader expects: the ensemble's per-organ table, the headline beside the paper's, the slices
chosen from the reference and the figures drawn on them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sepnet_core.analysis.plots import organ_dice_plot, save_figure
from sepnet_core.analysis.reader import SliceView, headline_table, organ_report, reference_slices, take_slice
from sepnet_core.analysis.slice_plots import slice_comparison, uncertainty_slices
from sepnet_core.metrics import evaluate_case
from sepnet_core.organs import organ_by_key

EYE_L, PAROTID_R, BRAIN_STEM = (organ_by_key(k).label for k in ("eye_l", "parotid_r", "brain_stem"))


def volume():
    ref = np.zeros((10, 12, 12), np.uint8)
    ref[2, 3:5, 3:5] = EYE_L
    ref[1, 3, 3] = EYE_L  # fewer eye voxels on z=1
    ref[6, 8:11, 2:5] = PAROTID_R
    ref[3:9, 6:8, 7] = BRAIN_STEM  # midline at x = 7
    return ref


def test_reference_slices_go_through_the_eyes_the_parotids_and_the_midline():
    views = reference_slices(volume())
    assert [(v.axis, v.index) for v in views] == [(0, 2), (0, 6), (2, 7)]
    assert views[0].title == "axial through the eyes (z=2)"
    only_stem = np.where(volume() == BRAIN_STEM, BRAIN_STEM, 0).astype(np.uint8)
    assert reference_slices(only_stem)[0].index == 3  # no eye: the slice with the most organ voxels
    with pytest.raises(ValueError, match="no organ"):
        reference_slices(np.zeros((4, 4, 4), np.uint8))


def test_take_slice_puts_superior_at_the_top_of_a_sagittal_view():
    vol = np.arange(3 * 4 * 5).reshape(3, 4, 5)
    np.testing.assert_array_equal(take_slice(vol, SliceView("a", 0, 1)), vol[1])
    sagittal = take_slice(vol, SliceView("s", 2, 2))
    assert sagittal.shape == (3, 4) and sagittal[0, 0] == vol[2, 0, 2]


def evaluation(pred, ref, config="ensemble"):
    return evaluate_case(pred, ref, (3.0, 1.0, 1.0), "c1").assign(config=config, seed=0)


def test_organ_report_counts_misses_and_volume_error():
    ref = volume()
    pred = ref.copy()
    pred[pred == EYE_L] = 0  # the eye is missed
    pred[6, 8:11, 5] = PAROTID_R  # parotid 9 -> 12 voxels: +33 %
    report = organ_report(evaluation(pred, ref))
    assert report.loc["eye_l", "n_missed"] == 1 and report.loc["eye_l", "dice_mean"] == 0.0
    assert math.isnan(report.loc["eye_l", "hd95_mean"]) and report.loc["eye_l", "hd95_penalized_mean"] > 0
    assert report.loc["parotid_r", "volume_error_pct"] == pytest.approx(100 / 3)
    assert report.loc["brain_stem", "dice_mean"] == 1.0 and report.loc["brain_stem", "volume_error_pct"] == 0
    assert report["n_missed"].sum() == 1 and len(report) == 22
    with pytest.raises(ValueError, match="not in the table"):
        organ_report(evaluation(pred, ref), "unet")


def test_headline_table_puts_the_papers_figures_beside_ours():
    ref = volume()
    table = headline_table(evaluation(ref, ref))
    assert table.loc["weighted Dice", "ours"] == 1.0
    assert table.loc["weighted Dice", "paper (hidden test set)"] == pytest.approx(0.8052)
    assert table.loc["weighted Dice", "leaderboard 1st"] == pytest.approx(0.8109)
    assert table.loc["weighted Dice", "leaderboard nnU-Net"] == pytest.approx(0.7988)
    assert table.loc["weighted HD95, misses skipped (mm)", "paper (hidden test set)"] == pytest.approx(3.043)
    assert table.loc["missed organ instances", "ours"] == 0
    assert (table["ours measured on"] == "the phantom").all()


def test_slice_figures_draw_every_arm_on_every_view(tmp_path):
    ref = volume()
    image = np.where(ref > 0, 40.0, -1000.0)
    shifted = np.roll(ref, 1, axis=1)
    views = reference_slices(ref)
    fig = slice_comparison(image, ref, {"baseline": shifted, "ensemble": ref}, views, (3.0, 1.0, 1.0))
    assert len(fig.axes) == 3 * 3
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[2] == "ensemble\nDice on this slice 1.00" and "reference" in titles[0]
    assert save_figure(fig, tmp_path / "slices.png").read_bytes()[:4] == b"\x89PNG"
    unc = np.where(shifted != ref, 0.69, 0.0)
    fig = uncertainty_slices(image, unc, ref, views, (3.0, 1.0, 1.0))
    assert len(fig.axes) == 3 + 1  # three views and the colour bar
    with pytest.raises(ValueError, match="one shape"):
        slice_comparison(image, ref, {"x": ref[:5]}, views, (3.0, 1.0, 1.0))


def test_organ_dice_plot_with_seaborn():
    ref = volume()
    table = pd.concat([evaluation(ref, ref, "ensemble"), evaluation(np.roll(ref, 1, axis=2), ref, "unet")])
    fig = organ_dice_plot(table, ["unet", "ensemble"])
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "Dice per test case"
    with pytest.raises(ValueError, match="not in the table"):
        organ_dice_plot(table, ["sepnet"])

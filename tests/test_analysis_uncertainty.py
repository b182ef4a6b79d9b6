"""Tests of sepnet_core.analysis.uncertainty_analysis (and its figures): tiny hand-computed volumes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sepnet_core.analysis.plots import error_rate_chart, reliability_diagram, save_figure, uncertainty_panel
from sepnet_core.analysis.uncertainty_analysis import (
    SpearmanResult,
    accumulate_levels,
    accumulate_reliability,
    auroc_from_levels,
    confidence_from_probabilities,
    error_detection_auroc,
    error_rate_by_level,
    expected_calibration_error,
    flag_auroc,
    organ_uncertainty_frame,
    organ_uncertainty_vs_dice,
    region_mask,
    reliability_table,
    spearman_level_error,
    spearman_uncertainty_dice,
)
from sepnet_core.analysis.uncertainty_cases import auroc_interval, level_table_with_interval, per_case_auroc
from sepnet_core.inference.uncertainty import vote_entropy

U51 = -(5 / 6 * math.log(5 / 6) + 1 / 6 * math.log(1 / 6))  # 0.4506
U42 = -(4 / 6 * math.log(4 / 6) + 2 / 6 * math.log(2 / 6))  # 0.6365


def toy():
    """2 x 2 x 2 volume, voxels in C order:
    unc   0    0    U51  U51  U42  U51  U51  U42
    pred  0    1    1    2    1    0    0    2
    ref   0    1    2    2    0    0    1    1
    error -    -    x    -    x    -    x    x
    """
    unc = np.array([0, 0, U51, U51, U42, U51, U51, U42], dtype=np.float32).reshape(2, 2, 2)
    pred = np.array([0, 1, 1, 2, 1, 0, 0, 2], dtype=np.uint8).reshape(2, 2, 2)
    ref = np.array([0, 1, 2, 2, 0, 0, 1, 1], dtype=np.uint8).reshape(2, 2, 2)
    return unc, pred, ref


@pytest.mark.parametrize("region, expected", [
    ("all", [(0.0, 2, 0), (0.4506, 4, 2), (0.6365, 2, 2)]),
    ("union", [(0.0, 1, 0), (0.4506, 4, 2), (0.6365, 2, 2)]),  # voxel 0 left out
    ("foreground", [(0.0, 1, 0), (0.4506, 3, 2), (0.6365, 2, 2)]),  # voxels 0 and 5 left out
])
def test_error_rate_by_level_toy(region, expected):
    unc, pred, ref = toy()
    frame = error_rate_by_level(unc, pred, ref, region=region)
    assert list(frame.columns) == ["level", "n_voxels", "n_errors", "error_rate"]
    got = list(zip(frame["level"], frame["n_voxels"], frame["n_errors"], strict=True))
    assert got == [(pytest.approx(lv), n, e) for lv, n, e in expected]
    assert frame["error_rate"].tolist() == pytest.approx([e / n for _, n, e in expected])


def test_levels_match_vote_entropy_of_six_members():
    votes = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 2], [1, 1, 1, 1, 2, 2]], dtype=np.uint8)
    unc = vote_entropy(votes.T.reshape(6, 1, 1, 3))
    frame = error_rate_by_level(unc, np.ones((1, 1, 3), np.uint8), np.ones((1, 1, 3), np.uint8), region="all")
    assert frame["level"].tolist() == [0.0, 0.4506, 0.6365]


def test_error_rate_by_level_explicit_mask_and_checks():
    unc, pred, ref = toy()
    mask = np.zeros((2, 2, 2), dtype=bool)
    mask.flat[[2, 4]] = True
    frame = error_rate_by_level(unc, pred, ref, mask=mask)
    assert frame["n_voxels"].tolist() == [1, 1] and frame["error_rate"].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="same shape"):
        error_rate_by_level(unc, pred[:1], ref)
    with pytest.raises(ValueError, match="unknown region"):
        error_rate_by_level(unc, pred, ref, region="near")
    with pytest.raises(ValueError, match="dtype"):
        error_rate_by_level(unc, pred.astype(float), ref)


def test_region_mask_box_grows_by_margin():
    pred = np.zeros((1, 1, 12), dtype=np.uint8)
    pred[0, 0, 5] = 3
    unc = np.zeros((1, 1, 12), dtype=np.float32)
    unc[0, 0, 7] = 0.5
    box = region_mask(pred, np.zeros_like(pred), unc, region="box", margin=2)
    assert np.flatnonzero(box[0, 0]).tolist() == list(range(3, 10))  # union 5..7, plus 2 each side
    with pytest.raises(ValueError, match="needs the uncertainty"):
        region_mask(pred, pred, region="union")


def test_accumulate_levels_sums_counts():
    a = pd.DataFrame({"level": [0.0, 0.4506], "n_voxels": [10, 4], "n_errors": [1, 2]})
    b = pd.DataFrame({"level": [0.4506, 0.6365], "n_voxels": [6, 2], "n_errors": [3, 2]})
    total = accumulate_levels([a, b])
    assert total["level"].tolist() == [0.0, 0.4506, 0.6365]
    assert total["n_voxels"].tolist() == [10, 10, 2] and total["n_errors"].tolist() == [1, 5, 2]
    assert total["error_rate"].tolist() == pytest.approx([0.1, 0.5, 1.0])
    assert accumulate_levels([]).empty


def test_spearman_level_error_hand_computed():
    frame = pd.DataFrame({"level": [0.0, 0.45, 0.64, 0.69, 0.87], "n_voxels": [100, 50, 20, 10, 1],
                          "n_errors": [1, 10, 3, 5, 1], "error_rate": [0.01, 0.2, 0.15, 0.5, 1.0]})
    # without the 1-voxel level: ranks of the rates 1, 3, 2, 4 -> rho = 1 - 6 * 2 / (4 * 15) = 0.8
    result = spearman_level_error(frame, min_voxels=2)
    assert result.rho == pytest.approx(0.8) and result.n == 4
    assert spearman_level_error(frame).n == 5
    assert math.isnan(spearman_level_error(frame.iloc[:2]).rho)
    assert SpearmanResult.from_dict(result.to_dict()) == result


# ------------------------------------------------------------------------------------------- AUROC
def test_auroc_hand_computed():
    assert error_detection_auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool)) == 0.75
    # ties count one half: the error (0.5) beats 0.1 and ties twice with 0.5 -> (1 + 0.5 + 0.5) / 3
    assert error_detection_auroc(np.array([0.5, 0.5, 0.5, 0.1]), np.array([1, 0, 0, 0], bool)) == \
        pytest.approx(2 / 3)
    assert math.isnan(error_detection_auroc(np.array([0.1, 0.2]), np.array([False, False])))


def test_auroc_equals_mann_whitney_with_ties_and_mask():
    rng = np.random.default_rng(0)
    unc = rng.integers(0, 6, size=(4, 5, 6)).astype(np.float32) / 5
    err = rng.uniform(size=unc.shape) < 0.3
    mask = rng.uniform(size=unc.shape) < 0.7
    u = stats.mannwhitneyu(unc[mask & err], unc[mask & ~err]).statistic
    expected = u / ((mask & err).sum() * (mask & ~err).sum())
    assert error_detection_auroc(unc, err, mask) == pytest.approx(expected)


def test_auroc_from_levels_matches_voxel_auroc():
    unc, pred, ref = toy()
    frame = error_rate_by_level(unc, pred, ref, region="all")
    assert auroc_from_levels(frame) == pytest.approx(error_detection_auroc(unc, pred != ref))
    # errors 3 at U51 (2 of 4) and U42 (2 of 2): positives above negatives -> hand value
    # negatives: 2 at 0, 2 at U51; positives: 2 at U51, 2 at U42 -> (2*(2 + 1) + 2*4) / 16
    assert auroc_from_levels(frame) == pytest.approx((2 * 3 + 2 * 4) / 16)


# -------------------------------------------------------------------------------------- calibration
def test_reliability_table_and_ece_hand_computed():
    conf = np.array([0.05, 0.15, 0.18, 0.95, 1.0])
    correct = np.array([False, True, False, True, True])
    table = reliability_table(conf, correct, bins=10)
    assert list(table.columns) == ["bin", "lower", "upper", "count", "mean_confidence", "accuracy"]
    assert table["count"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table.loc[1, "mean_confidence"] == pytest.approx(0.165)
    assert table.loc[9, "accuracy"] == 1.0 and math.isnan(table.loc[5, "accuracy"])
    assert expected_calibration_error(table) == pytest.approx((0.05 + 2 * 0.335 + 2 * 0.025) / 5)


def test_accumulate_reliability_equals_pooled_table():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.3, 1.0, size=200)
    correct = rng.uniform(size=200) < conf
    parts = [reliability_table(conf[:70], correct[:70], 5), reliability_table(conf[70:], correct[70:], 5)]
    pooled = accumulate_reliability(parts)
    whole = reliability_table(conf, correct, 5)
    pd.testing.assert_frame_equal(pooled, whole, check_dtype=False)


def test_reliability_checks_and_confidence():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_table(np.array([1.5]), np.array([True]))
    with pytest.raises(ValueError, match="bins"):
        reliability_table(np.array([0.5]), np.array([True]), bins=0)
    prob = np.zeros((3, 1, 1, 2), np.float32)
    prob[:, 0, 0, 0] = (0.2, 0.7, 0.1)
    prob[:, 0, 0, 1] = (0.5, 0.2, 0.3)
    conf, labels = confidence_from_probabilities(prob)
    assert conf.ravel().tolist() == pytest.approx([0.7, 0.5]) and labels.ravel().tolist() == [1, 0]


# --------------------------------------------------------------------------------------- organ flag
def test_organ_uncertainty_vs_dice_and_flag():
    unc = organ_uncertainty_frame({"c1": {"brain_stem": 0.1, "eye_l": 0.5},
                                   "c2": {"brain_stem": 0.2, "eye_l": math.nan}})
    dice = pd.DataFrame({"case": ["c1", "c1", "c2", "c2"], "organ": ["brain_stem", "eye_l"] * 2,
                         "dice": [0.9, 0.5, 0.8, 0.0]})
    joined = organ_uncertainty_vs_dice(unc, dice)
    assert list(joined.columns) == ["case", "organ", "label", "uncertainty", "dice"]
    assert joined["label"].tolist() == [1, 2, 1]  # c2 eye_l has no uncertainty (not predicted)
    assert spearman_uncertainty_dice(joined).n == 3
    assert spearman_uncertainty_dice(joined).rho == pytest.approx(-1.0)
    assert flag_auroc(joined, dice_below=0.7) == 1.0
    with pytest.raises(ValueError, match="several rows"):
        organ_uncertainty_vs_dice(pd.concat([unc, unc]), dice)


# ------------------------------------------------------------------------------------------ figures
def test_uncertainty_figures_write_png(tmp_path):
    unc, pred, ref = toy()
    fig = error_rate_chart(error_rate_by_level(unc, pred, ref))
    assert len(fig.axes) == 1 and save_figure(fig, tmp_path / "levels.png").stat().st_size > 0
    table = reliability_table(np.array([0.2, 0.6, 0.9]), np.array([False, True, True]))
    fig = reliability_diagram(table)
    assert len(fig.axes) == 2 and save_figure(fig, tmp_path / "rel.png").stat().st_size > 0
    image = np.linspace(-200, 300, 4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8)
    big_pred = np.zeros((4, 8, 8), np.uint8)
    big_pred[1:3, 2:6, 2:6] = 1
    big_ref = big_pred.copy()
    big_ref[2, 2:4, 2:6] = 2
    big_unc = (big_pred != big_ref).astype(np.float32) * 0.45
    fig = uncertainty_panel(image, big_pred, big_ref, big_unc)
    assert len(fig.axes) == 5  # four panels and the colour bar
    assert "z=2" in fig.axes[0].get_title()  # the slice with the errors
    assert save_figure(fig, tmp_path / "panel.png").stat().st_size > 0
    with pytest.raises(ValueError, match="outside"):
        uncertainty_panel(image, big_pred, big_ref, big_unc, z=9)


def test_reference_flag_table_hand_counted():
    from sepnet_core.analysis import reference_flag_table

    # brain_stem threshold 0.5; eye_l threshold 0.2; lens_l has no threshold (not counted).
    reference = {"organs": {"brain_stem": {"threshold": 0.5}, "eye_l": {"threshold": 0.2},
                            "lens_l": {"threshold": None}}}
    frame = pd.DataFrame({
        "case": ["a", "b", "a", "b", "a"],
        "organ": ["brain_stem", "brain_stem", "eye_l", "eye_l", "lens_l"],
        "uncertainty": [0.6, 0.1, 0.3, 0.1, 0.9],
        "dice": [0.4, 0.9, 0.8, 0.5, 0.1],
    })
    # flagged: a/brain_stem (poor), a/eye_l (good); unflagged: b/brain_stem (good), b/eye_l (poor)
    row = reference_flag_table(frame, reference, dice_below=0.7).iloc[0]
    assert (row["n"], row["n_flagged"], row["n_poor"], row["poor_flagged"]) == (4, 2, 2, 1)
    assert row["sensitivity"] == pytest.approx(0.5) and row["specificity"] == pytest.approx(0.5)
    assert row["precision"] == pytest.approx(0.5)
    assert row["dice_flagged"] == pytest.approx(0.6) and row["dice_unflagged"] == pytest.approx(0.7)


# ------------------------------------------------------------------ judged on cases, in a stated region
def test_reference_region_is_the_organs_dilated_by_a_margin_in_mm():
    ref = np.zeros((9, 11, 11), np.uint8)
    ref[4, 5, 5] = 3
    pred = np.full(ref.shape, 1, np.uint8)  # an untrained model: everything is organ
    spacing = (3.0, 1.0, 1.0)
    keep = region_mask(pred, ref, region="reference", spacing_mm=spacing, margin_mm=3.0)
    z, y, x = np.indices(ref.shape)
    distance = np.sqrt(((z - 4) * 3.0) ** 2 + (y - 5) ** 2 + (x - 5) ** 2)
    np.testing.assert_array_equal(keep, distance <= 3.0)  # the prediction does not grow it
    assert keep[4].sum() == 29 and keep[3, 5, 5] and not keep[3, 5, 6]  # 3 mm: one slice, centre only
    assert not region_mask(pred, np.zeros_like(ref), region="reference", spacing_mm=spacing).any()
    with pytest.raises(ValueError, match="spacing_mm"):
        region_mask(pred, ref, region="reference")
    with pytest.raises(ValueError, match="margin_mm"):
        region_mask(pred, ref, region="reference", spacing_mm=spacing, margin_mm=-1.0)


def _case_levels(rng, n_voxels, separation):
    """A level table of one case: errors more likely at higher levels when ``separation`` > 0."""
    levels = np.array([0.0, U51, U42])
    unc = rng.choice(levels, size=n_voxels, p=[0.7, 0.2, 0.1]).reshape(1, 1, -1)
    p_error = 0.05 + separation * (unc / U42)
    ref = np.ones(unc.shape, np.uint8)
    pred = np.where(rng.random(unc.shape) < p_error, 2, 1).astype(np.uint8)
    return error_rate_by_level(unc, pred, ref, region="all")


def test_per_case_auroc_and_its_interval_over_cases():
    rng = np.random.default_rng(0)
    informative = {f"c{i}": _case_levels(rng, 2000, 0.5) for i in range(20)}
    table = per_case_auroc(informative)
    assert list(table["case"]) == list(informative) and table["auroc"].between(0, 1).all()
    for case, frame in informative.items():
        assert table.set_index("case").loc[case, "auroc"] == pytest.approx(auroc_from_levels(frame))
    summary = auroc_interval(table)
    values = table["auroc"].to_numpy()
    half = stats.t.ppf(0.975, 19) * values.std(ddof=1) / math.sqrt(20)
    assert summary["mean"] == pytest.approx(values.mean()) and summary["n_cases"] == 20
    assert summary["ci_high"] - summary["mean"] == pytest.approx(half)
    assert summary["ci_low"] > 0.5  # errors concentrate where members disagree
    null = auroc_interval(per_case_auroc({f"c{i}": _case_levels(rng, 2000, 0.0) for i in range(20)}))
    assert null["ci_low"] < 0.5 < null["ci_high"]  # no information: the interval holds 0.5
    one = auroc_interval(table.iloc[:1])
    assert one["n_cases"] == 1 and math.isnan(one["ci_low"])


def test_level_table_keeps_level_zero_and_bootstraps_over_cases():
    rng = np.random.default_rng(1)
    cases = {f"c{i}": _case_levels(rng, 500, 0.5) for i in range(8)}
    table = level_table_with_interval(cases, n_boot=500)
    pooled = accumulate_levels(list(cases.values()))
    pd.testing.assert_frame_equal(table[list(pooled.columns)], pooled)
    assert table["level"].iloc[0] == 0.0 and (table["n_cases"] == 8).all()
    assert (table["ci_low"] <= table["error_rate"]).all() and (table["error_rate"] <= table["ci_high"]).all()
    assert table.equals(level_table_with_interval(cases, n_boot=500))  # seeded: deterministic
    (whiskers,) = [c for c in error_rate_chart(table).axes[0].containers if getattr(c, "has_yerr", False)]
    assert len(whiskers.lines[2][0].get_segments()) == len(table)  # the interval drawn on each bar
    # identical cases: resampling them changes nothing, the interval collapses on the rate
    same = level_table_with_interval({"a": cases["c0"], "b": cases["c0"]}, n_boot=200)
    np.testing.assert_allclose(same["ci_low"], same["error_rate"])
    np.testing.assert_allclose(same["ci_high"], same["error_rate"])

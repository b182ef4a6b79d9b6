"""Tests of sepnet_core.metrics: hand-computed cases, empty-mask conventions, cross-checks against MONAI."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from sepnet_core import metrics
from sepnet_core.metrics import TABLE_COLUMNS, dice, evaluate_case, hd95, summarize, weighted_average


def _mask(shape, *boxes):
    """Boolean (z, y, x) mask of ``shape`` with each box (tuple of slices) set."""
    m = np.zeros(shape, dtype=bool)
    for box in boxes:
        m[box] = True
    return m


def _voxel(shape, *points):
    m = np.zeros(shape, dtype=bool)
    for p in points:
        m[p] = True
    return m


# --------------------------------------------------------------------------------------- hand-computed
S = (6, 7, 25)
HD95_CASES = [
    # (pred, ref, spacing, expected hd95 mm, why)
    (_voxel(S, (0, 0, 0)), _voxel(S, (3, 0, 0)), (3.0, 1.0, 1.0), 9.0, "3 slices x 3 mm"),
    (_voxel(S, (2, 2, 1)), _voxel(S, (2, 2, 5)), (3.0, 1.0, 0.5), 2.0, "4 columns x 0.5 mm"),
    (_voxel(S, (0, 0, 0)), _voxel(S, (1, 1, 0)), (3.0, 2.0, 1.0), math.sqrt(13.0), "diagonal sqrt(3^2+2^2)"),
    (_mask(S, np.s_[1:4, 1:4, 1:4]), _mask(S, np.s_[1:4, 1:4, 1:4]), (3.0, 1.0, 1.0), 0.0, "identical"),
    # cubes shifted by one slice: half of each surface is 0 away, half one slice (2 mm) away
    (_mask(S, np.s_[0:2, 0:2, 0:2]), _mask(S, np.s_[1:3, 0:2, 0:2]), (2.0, 1.0, 1.0), 2.0, "shifted cubes"),
    # one voxel against a 21-voxel line: directed distances 0..20 voxels; 95th pct of 21 values = 19,
    # x 0.5 mm = 9.5 (the pooled percentile would give 9.975, the maximum 10)
    (_voxel(S, (0, 0, 0)), _mask(S, np.s_[0:1, 0:1, 0:21]), (3.0, 1.0, 0.5), 9.5, "per-direction percentile"),
    # 5-cube around a concentric 3-cube (1 mm): outer shell -> inner shell distances are 1 (54 voxels),
    # sqrt 2 (36), sqrt 3 (8); the 95th percentile (position 92.15 of 98) is sqrt 3
    (_mask(S, np.s_[0:5, 0:5, 0:5]), _mask(S, np.s_[1:4, 1:4, 1:4]), (1.0, 1.0, 1.0), math.sqrt(3.0),
     "nested shells"),
]


@pytest.mark.parametrize(("pred", "ref", "spacing", "expected", "why"), HD95_CASES,
                         ids=[c[-1] for c in HD95_CASES])
def test_hd95_hand_computed(pred, ref, spacing, expected, why):
    assert hd95(pred, ref, spacing) == pytest.approx(expected, abs=1e-9)
    assert hd95(ref, pred, spacing) == pytest.approx(expected, abs=1e-9)  # symmetric


DICE_CASES = [
    # (pred, ref, expected dice)
    (_mask(S, np.s_[0:2, 0:2, 0:2]), _mask(S, np.s_[1:3, 0:2, 0:2]), 2 * 4 / 16),
    (_mask(S, np.s_[0:3, 0:3, 0:3]), _mask(S, np.s_[0:2, 0:3, 0:3]), 2 * 18 / 45),
    (_mask(S, np.s_[0:2, 0:2, 0:2]), _mask(S, np.s_[3:5, 0:2, 0:2]), 0.0),
    (_mask(S, np.s_[0:2, 0:2, 0:2]), _mask(S, np.s_[0:2, 0:2, 0:2]), 1.0),
]


@pytest.mark.parametrize(("pred", "ref", "expected"), DICE_CASES)
def test_dice_hand_computed(pred, ref, expected):
    assert dice(pred, ref) == pytest.approx(expected, abs=1e-12)


def test_masks_may_be_zero_one_numbers():
    a, b = _mask(S, np.s_[0:2, 0:2, 0:2]), _mask(S, np.s_[1:3, 0:2, 0:2])
    assert dice(a.astype(np.uint8), b.astype(np.float32)) == pytest.approx(0.5)
    assert hd95(a.astype(np.int64), b, (2.0, 1.0, 1.0)) == pytest.approx(2.0)


# ----------------------------------------------------------------------------------------- empty masks
EMPTY = np.zeros(S, dtype=bool)
BLOB = _mask(S, np.s_[1:3, 2:4, 2:5])


@pytest.mark.parametrize(
    ("pred", "ref", "expected_dice", "expected_hd95"),
    [(EMPTY, EMPTY, math.nan, math.nan), (EMPTY, BLOB, 0.0, math.inf), (BLOB, EMPTY, 0.0, math.inf)],
    ids=["both-empty", "pred-empty", "ref-empty"],
)
def test_empty_mask_conventions(pred, ref, expected_dice, expected_hd95):
    np.testing.assert_equal(dice(pred, ref), expected_dice)
    np.testing.assert_equal(hd95(pred, ref, (3.0, 1.0, 1.0)), expected_hd95)


# ------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: dice(np.zeros((4, 4), bool), np.zeros((4, 4), bool)), "pred"),
        (lambda: dice(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 5), bool)), "pred shape"),
        (lambda: dice(np.full((2, 4, 4), 2), np.zeros((2, 4, 4), bool)), "pred"),
        (lambda: hd95(BLOB, np.zeros((2, 2, 2, 2), bool)), "ref"),
        (lambda: hd95(BLOB, BLOB, (1.0, 1.0)), "spacing_mm"),
        (lambda: hd95(BLOB, BLOB, (1.0, 0.0, 1.0)), "spacing_mm"),
        (lambda: hd95(BLOB, BLOB, (1.0, -1.0, 1.0)), "spacing_mm"),
        (lambda: hd95(BLOB, BLOB, (1.0, math.nan, 1.0)), "spacing_mm"),
        (lambda: hd95(BLOB, BLOB, (1.0, math.inf, 1.0)), "spacing_mm"),
        (lambda: hd95(BLOB, BLOB, "abc"), "spacing_mm"),
        (lambda: evaluate_case(np.zeros(S, np.uint8), np.full(S, 23, np.uint8), (1, 1, 1)), "ref_labels"),
        (lambda: evaluate_case(np.full(S, -1, np.int16), np.zeros(S, np.uint8), (1, 1, 1)), "pred_labels"),
        (lambda: evaluate_case(np.zeros(S, np.float32), np.zeros(S, np.uint8), (1, 1, 1)), "pred_labels"),
        (lambda: evaluate_case(np.zeros(S, "u1"), np.zeros((6, 7, 9), np.uint8), (1, 1, 1)), "pred_labels"),
        (lambda: evaluate_case(np.zeros(S, np.uint8), np.zeros(S, np.uint8), (1, 1, 0)), "spacing_mm"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()


# ------------------------------------------------------------------------------ independent references
def _random_pair(rng: np.random.Generator, shape=(14, 30, 26)):
    """Two overlapping, irregular, multi-component masks (smoothed noise), some touching the border."""
    def blob():
        field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=(1.0, 2.5, 2.5))
        return field > np.quantile(field, rng.uniform(0.7, 0.95))

    a = blob()
    b = a ^ (rng.random(shape) < 0.02)  # flip a few voxels ...
    if rng.random() < 0.5:
        b |= blob()  # ... and sometimes add more regions
    return a, b


def _brute_force_hd95(pred, ref, spacing):
    """Erosion-XOR edges, all pairwise distances, max of the two directed 95th percentiles."""
    edges = [m ^ ndimage.binary_erosion(m) for m in (pred, ref)]
    points = [np.argwhere(e) * np.asarray(spacing) for e in edges]
    pairwise = np.sqrt(((points[0][:, None, :] - points[1][None, :, :]) ** 2).sum(-1))
    return max(np.percentile(pairwise.min(axis=1), 95), np.percentile(pairwise.min(axis=0), 95))


def test_edges_equal_scipy_erosion_xor():
    rng = np.random.default_rng(3)
    for _ in range(5):
        a, _b = _random_pair(rng)
        np.testing.assert_array_equal(metrics._edges(a), a ^ ndimage.binary_erosion(a))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("edt_voxels_per_edge", [0.0, 1e12], ids=["kd-tree", "distance-transform"])
def test_hd95_matches_brute_force_on_both_paths(seed, edt_voxels_per_edge, monkeypatch):
    monkeypatch.setattr(metrics, "_EDT_VOXELS_PER_EDGE", edt_voxels_per_edge)
    rng = np.random.default_rng(seed)
    pred, ref = _random_pair(rng, shape=(10, 18, 16))
    spacing = tuple(rng.uniform(0.4, 3.5, 3))
    assert hd95(pred, ref, spacing) == pytest.approx(_brute_force_hd95(pred, ref, spacing), rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_matches_monai_on_random_anisotropic_masks(seed):
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")
    rng = np.random.default_rng(100 + seed)
    pred, ref = _random_pair(rng)
    spacing = [float(s) for s in rng.uniform(0.3, 4.0, 3)]
    p, r = torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_hd = monai_metrics.compute_hausdorff_distance(
            p, r, include_background=True, percentile=95, directed=False, spacing=spacing
        )
        expected_dice = monai_metrics.compute_dice(p, r, include_background=True)
    assert hd95(pred, ref, spacing) == pytest.approx(float(expected_hd[0, 0]), rel=1e-5, abs=1e-5)
    assert dice(pred, ref) == pytest.approx(float(expected_dice[0, 0]), rel=1e-6)


# -------------------------------------------------------------------------------------- evaluate_case
def test_evaluate_case_tiny_multilabel_volume():
    shape, spacing = (6, 8, 8), (2.0, 1.0, 1.0)
    ref = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    ref[0:2, 0:2, 0:2] = 1  # label 1: cube shifted one slice in pred -> dice 0.5, hd95 2 mm
    pred[1:3, 0:2, 0:2] = 1
    ref[4, 4, 4] = 2  # label 2: missed
    pred[4, 6, 6] = 3  # label 3: hallucinated
    ref[2:4, 5:8, 5:8] = 5  # label 5: perfect
    pred[2:4, 5:8, 5:8] = 5
    table = evaluate_case(pred, ref, spacing, case_id="c01")

    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table["label"].tolist() == list(range(1, 23))
    assert (table["case"] == "c01").all()
    row = table.set_index("label")
    assert row.loc[1, "organ"] == "brain_stem"
    assert row.loc[1, "dice"] == pytest.approx(0.5) and row.loc[1, "hd95"] == pytest.approx(2.0)
    assert row.loc[2, "dice"] == 0.0 and row.loc[2, "hd95"] == math.inf
    assert row.loc[3, "dice"] == 0.0 and row.loc[3, "hd95"] == math.inf
    assert row.loc[5, "dice"] == 1.0 and row.loc[5, "hd95"] == 0.0
    absent = row.drop(index=[1, 2, 3, 5])
    assert absent["dice"].isna().all() and absent["hd95"].isna().all()
    voxel_ml = 2.0 / 1000.0
    assert row.loc[5, "volume_ref_ml"] == pytest.approx(18 * voxel_ml)
    assert row.loc[2, "volume_ref_ml"] == pytest.approx(voxel_ml) and row.loc[2, "volume_pred_ml"] == 0.0
    assert row.loc[3, "volume_pred_ml"] == pytest.approx(voxel_ml)
    # misses are counted and get the image-diagonal penalty; nothing else changes
    diagonal = math.sqrt((5 * 2.0) ** 2 + 7.0**2 + 7.0**2)
    assert row["missed"].tolist() == [label == 2 for label in range(1, 23)]  # hallucinated 3: not a miss
    assert row.loc[2, "hd95_penalized"] == pytest.approx(diagonal)
    assert row.loc[3, "hd95_penalized"] == pytest.approx(diagonal)
    assert row.loc[1, "hd95_penalized"] == pytest.approx(2.0) and row.loc[5, "hd95_penalized"] == 0.0
    assert absent["hd95_penalized"].isna().all()


def test_image_diagonal_bounds_every_hd95_of_the_image():
    shape, spacing = (5, 9, 7), (3.0, 1.5, 2.0)
    assert metrics.image_diagonal_mm(shape, spacing) == pytest.approx(math.sqrt(12**2 + 12**2 + 12**2))
    corners = hd95(_voxel(shape, (0, 0, 0)), _voxel(shape, (4, 8, 6)), spacing)
    assert corners == pytest.approx(metrics.image_diagonal_mm(shape, spacing))
    with pytest.raises(ValueError, match="shape"):
        metrics.image_diagonal_mm((5, 0, 7), spacing)


def test_summary_counts_misses_and_scores_them_at_the_penalty():
    shape, spacing = (6, 8, 8), (2.0, 1.0, 1.0)
    ref = np.zeros(shape, np.uint8)
    ref[0:2, 0:2, 0:2] = 1  # brain stem, weight 100: found exactly
    ref[4, 4, 4] = 4  # weight 50: missed
    pred = np.where(ref == 1, 1, 0).astype(np.uint8)
    summary = summarize(evaluate_case(pred, ref, spacing, "c"))
    diagonal = metrics.image_diagonal_mm(shape, spacing)
    assert summary["n_missed"] == 1 and summary["n_hd95_inf"] == 1
    assert summary["weighted_hd95_finite"] == 0.0  # the miss skipped: looks perfect
    assert summary["weighted_hd95_penalized"] == pytest.approx(50 * diagonal / 150)
    assert summary["mean_hd95_penalized"] == pytest.approx(diagonal / 2)
    organs = summary["per_organ"]
    assert organs["brain_stem"]["n_missed"] == 0 and organs[metrics.ORGANS[3].key]["n_missed"] == 1


def test_evaluate_case_equals_per_organ_functions():
    rng = np.random.default_rng(7)
    shape, spacing = (12, 24, 20), (3.0, 0.8, 1.1)
    ref = rng.integers(0, 23, shape).astype(np.uint8)
    ref = ndimage.median_filter(ref, size=3)  # lumps, so that organs have interiors
    pred = np.where(rng.random(shape) < 0.1, rng.integers(0, 23, shape), ref).astype(np.uint8)
    table = evaluate_case(pred, ref, spacing)
    for label in range(1, 23):
        got = table.loc[table["label"] == label].iloc[0]
        np.testing.assert_allclose(got["dice"], dice(pred == label, ref == label), rtol=1e-12)
        np.testing.assert_allclose(got["hd95"], hd95(pred == label, ref == label, spacing), rtol=1e-12)


# -------------------------------------------------------------------------------- averages, summaries
def _table(rows):
    return pd.DataFrame(rows, columns=["case", "label", "dice", "hd95"])


def test_weighted_average_hand_computed():
    # weights: label 1 -> 100, label 4 -> 50, label 2 -> 100 (NaN: skipped, weights renormalised)
    table = _table([("a", 1, 0.8, 2.0), ("a", 4, 0.5, 4.0), ("a", 2, math.nan, math.nan)])
    assert weighted_average(table, "dice") == pytest.approx((100 * 0.8 + 50 * 0.5) / 150)
    assert weighted_average(table, "hd95") == pytest.approx((100 * 2.0 + 50 * 4.0) / 150)


def test_weighted_average_takes_organ_means_over_cases_first():
    # label 1 has values in two cases (mean 0.6), label 4 in one (0.9); weights 100 and 50
    table = _table([("a", 1, 0.4, 1.0), ("b", 1, 0.8, 3.0), ("a", 4, 0.9, 1.0), ("b", 4, math.nan, math.nan)])
    assert weighted_average(table, "dice") == pytest.approx((100 * 0.6 + 50 * 0.9) / 150)


def test_weighted_average_infinite_hd95():
    table = _table([("a", 1, 0.8, 2.0), ("a", 4, 0.0, math.inf)])
    assert weighted_average(table, "hd95") == math.inf
    assert weighted_average(table, "hd95", on_inf="skip") == pytest.approx(2.0)
    assert weighted_average(table, "dice") == pytest.approx(100 * 0.8 / 150)


def test_weighted_average_all_nan_is_nan():
    assert math.isnan(weighted_average(_table([("a", 1, math.nan, math.nan)]), "dice"))


@pytest.mark.parametrize(
    ("table", "metric", "kwargs", "error", "match"),
    [
        (_table([("a", 1, 0.5, 1.0)]), "jaccard", {}, ValueError, "jaccard"),
        (_table([("a", 1, 0.5, 1.0)]), "hd95", {"on_inf": "ignore"}, ValueError, "on_inf"),
        (_table([("a", 0, 0.5, 1.0)]), "dice", {}, ValueError, "label"),
        (pd.DataFrame({"label": [1]}), "dice", {}, ValueError, "dice"),
        ({"label": [1], "dice": [0.5]}, "dice", {}, TypeError, "table"),
    ],
)
def test_weighted_average_bad_arguments(table, metric, kwargs, error, match):
    with pytest.raises(error, match=match):
        weighted_average(table, metric, **kwargs)


def test_summarize_hand_computed():
    table = _table([
        ("a", 1, 0.4, 1.0), ("b", 1, 0.8, 3.0),
        ("a", 4, 0.9, 2.0), ("b", 4, 0.0, math.inf),
        ("a", 2, math.nan, math.nan), ("b", 2, math.nan, math.nan),
    ])
    summary = summarize(table)
    assert summary["n_cases"] == 2
    assert summary["mean_dice"] == pytest.approx((0.6 + 0.45) / 2)
    assert summary["weighted_dice"] == pytest.approx((100 * 0.6 + 50 * 0.45) / 150)
    assert summary["mean_hd95"] == math.inf and summary["weighted_hd95"] == math.inf
    assert summary["mean_hd95_finite"] == pytest.approx((2.0 + 2.0) / 2)
    assert summary["weighted_hd95_finite"] == pytest.approx((100 * 2.0 + 50 * 2.0) / 150)
    assert summary["n_hd95_inf"] == 1
    brain_stem, lens_l, eye_l = (summary["per_organ"][k] for k in ("brain_stem", "lens_l", "eye_l"))
    assert brain_stem["dice_mean"] == pytest.approx(0.6)
    assert brain_stem["dice_std"] == pytest.approx(np.std([0.4, 0.8], ddof=1))
    assert brain_stem["n"] == 2 and brain_stem["weight"] == 100.0
    assert lens_l["n_hd95_inf"] == 1 and lens_l["hd95_mean"] == math.inf
    assert eye_l["n"] == 0 and math.isnan(eye_l["dice_mean"])
    assert len(summary["per_organ"]) == 22

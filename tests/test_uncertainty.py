"""Vote entropy, predictive entropy and per-organ means (sepnet_core.inference.uncertainty)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sepnet_core.inference.uncertainty import organ_uncertainty, predictive_entropy, vote_entropy
from sepnet_core.organs import ORGANS

# Votes of 6 members and the paper's tabulated entropy (shared/paper.md, 4 decimals).
PAPER_TABLE = [
    ((3, 3, 3, 3, 3, 3), 0.0),  # 6-0
    ((1, 1, 1, 1, 1, 0), 0.4506),  # 5-1
    ((0, 7, 0, 7, 0, 0), 0.6365),  # 4-2
    ((2, 2, 2, 9, 9, 9), 0.6931),  # 3-3
    ((4, 4, 4, 4, 5, 6), 0.8676),  # 4-1-1
    ((22, 0, 22, 1, 0, 22), 1.0114),  # 3-2-1
    ((0, 1, 2, 0, 1, 2), 1.0986),  # 2-2-2
]


@pytest.mark.parametrize(("votes", "expected"), PAPER_TABLE)
def test_vote_entropy_matches_the_paper_table(votes, expected):
    labels = np.array(votes, dtype=np.uint8).reshape(6, 1, 1, 1)
    assert vote_entropy(labels)[0, 0, 0] == pytest.approx(expected, abs=5e-5)


def test_vote_entropy_is_per_voxel_and_chunk_independent():
    # All table rows laid out along z (40 slices > one chunk of 16), y, x: every voxel its own vote.
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(PAPER_TABLE), size=(40, 3, 2))
    labels = np.stack([np.array(PAPER_TABLE[r][0], dtype=np.uint8) for r in rows.ravel()], axis=1)
    labels = labels.reshape(6, 40, 3, 2)
    expected = np.array([PAPER_TABLE[r][1] for r in rows.ravel()]).reshape(40, 3, 2)
    out = vote_entropy(labels)
    assert out.dtype == np.float32 and out.shape == (40, 3, 2)
    np.testing.assert_allclose(out, expected, atol=5e-5)


def test_vote_entropy_general_formula_and_single_member():
    # 2 members disagreeing: ln 2; 3 all different: ln 3; 1 member: always 0.
    assert vote_entropy(np.array([[[[0]]], [[[5]]]], np.uint8))[0, 0, 0] == pytest.approx(math.log(2))
    three = np.arange(3, dtype=np.uint8).reshape(3, 1, 1, 1)
    assert vote_entropy(three)[0, 0, 0] == pytest.approx(math.log(3))
    assert not vote_entropy(np.full((1, 2, 2, 2), 4, np.uint8)).any()


@pytest.mark.parametrize(
    ("labels", "num_classes", "match"),
    [
        (np.zeros((6, 2, 2), np.uint8), 23, "M, z, y, x"),
        (np.zeros((6, 1, 2, 2), np.float32), 23, "integer"),
        (np.full((2, 1, 2, 2), 23, np.uint8), 23, "0..22"),
        (np.full((2, 1, 2, 2), 2, np.uint8), 2, "0..1"),
        (np.zeros((2, 1, 2, 2), np.uint8), 0, "num_classes"),
    ],
)
def test_vote_entropy_rejects_bad_input(labels, num_classes, match):
    with pytest.raises(ValueError, match=match):
        vote_entropy(labels, num_classes)


def test_predictive_entropy_values():
    prob = np.zeros((3, 20, 1, 3), dtype=np.float32)
    prob[0, :, 0, 0] = 1.0  # certain: 0
    prob[:2, :, 0, 1] = 0.5  # two-way tie: ln 2
    prob[:, :, 0, 2] = 1.0 / 3.0  # uniform: ln 3
    for dtype in (np.float32, np.float16):
        out = predictive_entropy(prob.astype(dtype))
        assert out.dtype == np.float32 and out.shape == (20, 1, 3)
        np.testing.assert_allclose(out[:, 0], np.tile([0.0, math.log(2), math.log(3)], (20, 1)), atol=1e-3)


def test_predictive_entropy_rejects_integer_or_3d():
    with pytest.raises(ValueError, match="mean_prob"):
        predictive_entropy(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="mean_prob"):
        predictive_entropy(np.zeros((2, 2, 2, 2), np.uint8))


def test_organ_uncertainty_means_and_nan_for_absent_organs():
    labels = np.zeros((20, 2, 2), np.uint8)
    unc = np.zeros((20, 2, 2), np.float32)
    labels[0, 0, :] = 1
    unc[0, 0, :] = [0.2, 0.4]  # brain stem: mean 0.3
    labels[17:, 1, 1] = 22
    unc[17:, 1, 1] = [1.0, 2.0, 3.0]  # mandible R across a chunk border: mean 2
    unc[5, 1, 0] = 9.0  # background: ignored
    result = organ_uncertainty(labels, unc)
    assert list(result) == [o.key for o in ORGANS]
    assert result["brain_stem"] == pytest.approx(0.3)
    assert result["mandible_r"] == pytest.approx(2.0)
    assert math.isnan(result["eye_l"])


def test_organ_uncertainty_rejects_mismatched_shapes_and_labels():
    with pytest.raises(ValueError, match="same shape"):
        organ_uncertainty(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="0..22"):
        organ_uncertainty(np.full((2, 2, 2), 30, np.uint8), np.zeros((2, 2, 2), np.float32))

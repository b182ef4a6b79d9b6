"""The registration-free atlas baseline (sepnet_core.analysis.atlas)."""

from __future__ import annotations

import numpy as np
import pytest

from sepnet_core.analysis.atlas import (
    atlas_predict,
    build_atlas,
    foreground_centroid_mm,
    score_atlas,
    score_atlas_folders,
)
from sepnet_core.data.io import list_cases
from sepnet_core.data.phantom import write_dataset


def two_organs(shape=(20, 40, 40), at=(5, 10, 10), small=(14, 30, 12)) -> np.ndarray:
    label = np.zeros(shape, np.uint8)
    z, y, x = at
    label[z:z + 8, y:y + 12, x:x + 12] = 1  # a big organ that sets the centroid
    z, y, x = small
    label[z:z + 2, y:y + 2, x:x + 2] = 2
    return label


def test_translated_copies_are_predicted_exactly():
    train = [two_organs(at=(2 + k, 8 + 2 * k, 5 + 3 * k), small=(11 + k, 28 + 2 * k, 7 + 3 * k))
             for k in range(3)]
    test = two_organs(shape=(24, 44, 44), at=(9, 20, 14), small=(18, 40, 16))
    atlas = build_atlas((t, (3.0, 2.0, 2.0)) for t in train)
    pred = atlas_predict(atlas, test.shape, (3.0, 2.0, 2.0), foreground_centroid_mm(test, (3.0, 2.0, 2.0)))
    assert np.array_equal(pred, test)
    table = score_atlas(atlas, [("t", test, (3.0, 2.0, 2.0))])
    assert list(table["dice"].iloc[:2]) == [1.0, 1.0] and table["dice"].iloc[2:].isna().all()


def test_each_voxel_takes_the_majority_label():
    near, far = (14, 30, 12), (14, 30, 30)
    train = [two_organs(small=near), two_organs(small=near), two_organs(small=far)]
    atlas = build_atlas((t, (1.0, 1.0, 1.0)) for t in train)
    ref = two_organs(small=near)
    pred = atlas_predict(atlas, ref.shape, (1.0, 1.0, 1.0), foreground_centroid_mm(ref, (1.0, 1.0, 1.0)))
    assert (pred[14:16, 30:32, 12:14] == 2).all() and (pred[14:16, 30:32, 30:32] == 0).all()


def test_voxel_space_ignores_the_spacing_and_mm_space_uses_it():
    fine = two_organs(shape=(20, 60, 60), at=(5, 10, 10))
    coarse = fine[:, ::2, ::2]  # the same anatomy on 2 mm pixels
    test = (coarse, (3.0, 2.0, 2.0))
    for space, expect in (("mm", 0.9), ("voxel", 0.0)):
        atlas = build_atlas([(fine, (3.0, 1.0, 1.0))], space=space)
        dice = score_atlas(atlas, [("t", *test)])["dice"].iloc[0]
        assert (dice > expect) if space == "mm" else (dice < 0.8), (space, dice)


def test_bad_input():
    with pytest.raises(ValueError, match="no organ"):
        foreground_centroid_mm(np.zeros((2, 2, 2), np.uint8), (1, 1, 1))
    with pytest.raises(ValueError, match="at least one"):
        build_atlas([])
    with pytest.raises(ValueError, match="space"):
        build_atlas([(two_organs(), (1, 1, 1))], space="world")
    with pytest.raises(ValueError, match="spacing"):
        foreground_centroid_mm(two_organs(), (1, 0, 1))


def test_scores_phantom_folders(tmp_path):
    write_dataset(tmp_path, 4, seed=0, profile="smoke", split={"train": 3, "valid": 0, "test": 1}, workers=1)
    table, summary = score_atlas_folders(list_cases(tmp_path, "train"), list_cases(tmp_path, "test"))
    assert len(table) == 22 and summary["n_cases"] == 1
    assert 0.0 < summary["mean_dice"] < 0.9  # position alone gets somewhere, not everywhere

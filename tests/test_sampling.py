"""Patch sampling: crops and padding, organ-aware over-sampling, the left/right-safe flip, replayable RNG."""

from __future__ import annotations

import numpy as np
import pytest

from sepnet_core.data.sampling import PatchSampler, crop_patch, flip_lr, organ_sampling_weights
from sepnet_core.organs import organ_by_key

PAROTID_L, PAROTID_R = organ_by_key("parotid_l").label, organ_by_key("parotid_r").label
BRAIN_STEM, LENS_L = organ_by_key("brain_stem").label, organ_by_key("lens_l").label


# ------------------------------------------------------------------------------------------- flip_lr
@pytest.mark.parametrize(
    ("label_in", "label_out"),
    [
        (0, 0),  # background
        (BRAIN_STEM, BRAIN_STEM),  # midline organ keeps its label
        (PAROTID_L, PAROTID_R),
        (PAROTID_R, PAROTID_L),
        (organ_by_key("optic_nerve_r").label, organ_by_key("optic_nerve_l").label),
        (organ_by_key("mandible_l").label, organ_by_key("mandible_r").label),
    ],
)
def test_flip_lr_mirrors_x_and_swaps_pairs(label_in, label_out):
    image = np.zeros((2, 3, 5), np.float32)
    label = np.zeros((2, 3, 5), np.uint8)
    image[1, 2, 1] = 7.0
    label[1, 2, 1] = label_in
    flipped_image, flipped_label = flip_lr(image, label)
    assert flipped_image[1, 2, 3] == 7.0 and flipped_image.sum() == 7.0  # x index 1 -> 5 - 1 - 1 = 3
    assert flipped_label[1, 2, 3] == label_out
    assert flipped_label.dtype == np.uint8 and flipped_image.dtype == np.float32


def test_flip_lr_twice_is_identity_and_rejects_bad_input():
    rng = np.random.default_rng(1)
    image = rng.random((3, 4, 6)).astype(np.float32)
    label = rng.integers(0, 23, (3, 4, 6)).astype(np.uint8)
    back_image, back_label = flip_lr(*flip_lr(image, label))
    assert np.array_equal(back_image, image) and np.array_equal(back_label, label)
    with pytest.raises(ValueError, match="shape"):
        flip_lr(image, label[:, :, :5])
    with pytest.raises(ValueError, match="integer"):
        flip_lr(image, label.astype(np.float32))


# ---------------------------------------------------------------------------------------- crop_patch
@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ((1,), [1, 2, 3]),  # inside
        ((-2,), [-1, -1, 0]),  # before the start: padded
        ((3,), [3, 4, -1]),  # past the end: padded
        ((6,), [-1, -1, -1]),  # entirely outside
    ],
)
def test_crop_patch_pads_outside(start, expected):
    volume = np.arange(5)
    assert crop_patch(volume, start, (3,), fill=-1).tolist() == expected


# --------------------------------------------------------------------------------- organ weights
def test_organ_sampling_weights_inverse_counts():
    counts = np.zeros(23)
    counts[[0, BRAIN_STEM, LENS_L, PAROTID_L]] = [10_000, 300, 10, 60]
    weights = organ_sampling_weights(counts)
    inverse = np.array([1 / 300, 1 / 10, 1 / 60])
    assert weights[[BRAIN_STEM, LENS_L, PAROTID_L]] == pytest.approx(inverse / inverse.sum())
    assert weights[0] == 0 and weights.sum() == pytest.approx(1.0)
    assert organ_sampling_weights(np.zeros(23)).sum() == 0


# ------------------------------------------------------------------------------------- PatchSampler
def _coded_volume(shape=(10, 20, 24)):
    """Every voxel's value is its flat index, so a patch tells where it was cut."""
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


def test_uniform_patches_lie_inside_the_volume():
    volume = _coded_volume()
    label = np.zeros(volume.shape, np.uint8)
    sampler = PatchSampler([volume], [label], (4, 8, 8), rng=np.random.default_rng(0))
    starts = set()
    for _ in range(50):
        image, lab = sampler.sample()
        assert image.shape == (4, 8, 8) and lab.shape == (4, 8, 8)
        z, y, x = np.unravel_index(int(image[0, 0, 0]), volume.shape)
        assert np.array_equal(image, volume[z:z + 4, y:y + 8, x:x + 8])
        starts.add((z, y, x))
    assert len(starts) > 40  # positions vary


def test_small_volume_is_centred_and_padded():
    volume = np.ones((2, 4, 8), np.float32)
    label = np.full((2, 4, 8), BRAIN_STEM, np.uint8)
    sampler = PatchSampler([volume], [label], (4, 8, 8), rng=np.random.default_rng(0), pad_value=-5.0)
    image, lab = sampler.sample()
    # z: 2 of 4 slices, offset 1; y: 4 of 8 rows, offset 2; x: fits exactly
    assert np.array_equal(image[1:3, 2:6, :], volume) and (image[0] == -5).all() and (image[:, 0] == -5).all()
    assert (lab[1:3, 2:6] == BRAIN_STEM).all() and lab.sum() == BRAIN_STEM * volume.size


def _two_organ_case():
    """A big brain stem block on one side, one lens voxel in the far corner."""
    label = np.zeros((8, 64, 64), np.uint8)
    label[:, 8:40, 8:40] = BRAIN_STEM
    label[6, 60, 60] = LENS_L
    return np.zeros(label.shape, np.float32), label


def test_organ_mode_oversamples_small_organs():
    volume, label = _two_organ_case()

    def lens_fraction(mode: str) -> float:
        sampler = PatchSampler([volume], [label], (8, 16, 16), mode=mode, rng=np.random.default_rng(3),
                               organ_fraction=1.0)
        return np.mean([(sampler.sample()[1] == LENS_L).any() for _ in range(200)])

    # uniform: the lens is in a 16 x 16 window for 1 of 49 x 49 positions in y, x -> about 0.01
    assert lens_fraction("uniform") < 0.1
    # organ-aware: lens weight 1/1 against 1/8192 for the brain stem -> almost always
    assert lens_fraction("organ") > 0.95


def test_organ_mode_centres_the_chosen_voxel_and_stays_inside():
    volume, label = _two_organ_case()
    volume = _coded_volume(label.shape)
    sampler = PatchSampler([volume], [label], (8, 16, 16), mode="organ", rng=np.random.default_rng(0),
                           organ_fraction=1.0)
    sampler.organ_weights = organ_sampling_weights(np.bincount([LENS_L], minlength=23))  # lens only
    image, lab = sampler.sample()
    z, y, x = np.unravel_index(int(image[0, 0, 0]), volume.shape)
    assert (z, y, x) == (0, 48, 48)  # lens at (6, 60, 60) near the corner: patch shifted inside
    assert lab[6, 12, 12] == LENS_L


def test_same_seed_and_restored_state_replay_the_same_patches():
    volume, label = _two_organ_case()

    def draw(sampler, n=5):
        return [sampler.sample()[1].copy() for _ in range(n)]

    a = PatchSampler([volume], [label], (8, 16, 16), mode="organ", rng=np.random.default_rng(7), flip=True)
    b = PatchSampler([volume], [label], (8, 16, 16), mode="organ", rng=np.random.default_rng(7), flip=True)
    assert all(np.array_equal(p, q) for p, q in zip(draw(a), draw(b), strict=True))
    state = a.rng.bit_generator.state
    first = draw(a)
    a.rng.bit_generator.state = state
    assert all(np.array_equal(p, q) for p, q in zip(first, draw(a), strict=True))


def test_flip_augmentation_keeps_left_organs_on_their_side():
    # Parotid L on the array's high-x side, parotid R on the low-x side; the image marks the voxels
    # of the organ that started as "L" with 1 and "R" with 2, so we can see whether a patch was flipped.
    label = np.zeros((8, 8, 16), np.uint8)
    image = np.zeros((8, 8, 16), np.float32)
    label[:, 2:6, 11:14], image[:, 2:6, 11:14] = PAROTID_L, 1.0
    label[:, 2:6, 2:5], image[:, 2:6, 2:5] = PAROTID_R, 2.0
    sampler = PatchSampler([image], [label], (8, 8, 16), rng=np.random.default_rng(0), flip=True)
    flips = 0
    for _ in range(40):
        img, lab = sampler.sample()
        left_x = np.nonzero(lab == PAROTID_L)[2]
        right_x = np.nonzero(lab == PAROTID_R)[2]
        assert left_x.min() >= 8 and right_x.max() < 8  # the label follows the side, not the voxels
        flips += bool(img[0, 2, 2] == 1.0)  # the former "L" organ now lies on the low-x side
    assert 5 < flips < 35


def test_batch_shapes_and_dtypes():
    volume, label = _two_organ_case()
    images, labels = PatchSampler([volume], [label], (8, 16, 16)).batch(3)
    assert images.shape == (3, 1, 8, 16, 16) and images.dtype == np.float32
    assert labels.shape == (3, 8, 16, 16) and labels.dtype == np.int64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "random"}, "unknown sampling mode"),
        ({"patch_size": (8, 16)}, "patch_size"),
        ({"organ_fraction": 1.5}, "organ_fraction"),
    ],
)
def test_bad_arguments(kwargs, match):
    volume, label = _two_organ_case()
    args = {"patch_size": (8, 16, 16), **kwargs}
    with pytest.raises(ValueError, match=match):
        PatchSampler([volume], [label], **args)


def test_mismatched_inputs():
    volume, label = _two_organ_case()
    with pytest.raises(ValueError, match="one label per volume"):
        PatchSampler([volume, volume], [label], (8, 16, 16))
    with pytest.raises(ValueError, match="shapes"):
        PatchSampler([volume], [label[:4]], (8, 16, 16))

"""Ensemble prediction (sepnet_core.inference.ensemble) with members whose output is known per voxel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from sepnet_core.inference.ensemble import _argmax_classes, predict_case
from sepnet_core.intensity import Window
from sepnet_core.models import ModelConfig
from sepnet_core.training.checkpoint import LoadedModel

SCALE = 4.0  # logit slope of the threshold members


class Threshold(nn.Module):
    """Two-class pointwise 'network': logits (s (t - x), s (x - t)); p1 = sigmoid(2 s (x - t))."""

    def __init__(self, t: float) -> None:
        super().__init__()
        self.t = t
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape[2:]))
        return torch.cat([SCALE * (self.t - x), SCALE * (x - self.t)], dim=1)


def member(t: float, window: Window, crop_yx=None, patch=(8, 8, 8)) -> LoadedModel:
    return LoadedModel(
        model=Threshold(t), model_config=ModelConfig(base=2, num_classes=2), intensity=window,
        crop_yx=crop_yx, meta={"path": f"t{t}", "config": {"patch_size": list(patch)}},
    )


def p1(m: LoadedModel, image: np.ndarray) -> np.ndarray:
    """Expected class-1 probability of a threshold member on the whole image (float64)."""
    x = m.intensity(image).astype(np.float64)
    return 1.0 / (1.0 + np.exp(-2.0 * SCALE * (x - m.model.t)))


def entropy(*probs):
    return -sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0) for p in probs)


@pytest.fixture
def image():
    return np.random.default_rng(0).uniform(-200, 300, size=(10, 12, 14)).astype(np.float32)


@pytest.mark.parametrize("mode", ["gaussian", "reference"])
def test_two_members_are_fused_by_mean_probability(image, mode):
    soft = Window(level=50, width=400)
    members = [member(0.3, soft), member(0.6, Window(level=100, width=300))]
    result = predict_case(members, image, mode=mode, keep_mean_prob=True, keep_member_labels=True)
    expected_p1 = (p1(members[0], image) + p1(members[1], image)) / 2
    assert result.labels.dtype == np.uint8 and result.labels.shape == image.shape
    assert result.num_members == 2
    np.testing.assert_allclose(result.mean_prob[1], expected_p1, atol=2e-3)
    np.testing.assert_allclose(result.mean_prob.sum(axis=0), 1.0, atol=2e-3)
    sure = np.abs(expected_p1 - 0.5) > 0.01
    np.testing.assert_array_equal(result.labels[sure], (expected_p1 > 0.5)[sure])
    # Member votes and vote entropy: ln 2 where exactly one member says 1, else 0.
    member_votes = np.stack([p1(m, image) > 0.5 for m in members])
    clear = (np.abs(np.stack([p1(m, image) for m in members]) - 0.5) > 0.01).all(axis=0)
    np.testing.assert_array_equal(result.member_labels[:, clear], member_votes[:, clear])
    split = member_votes[0] != member_votes[1]
    assert split[clear].any() and (~split[clear]).any()
    expected_votes = np.where(split, math.log(2), 0.0)
    np.testing.assert_allclose(result.vote_entropy[clear], expected_votes[clear], atol=1e-6)
    np.testing.assert_allclose(result.predictive_entropy, entropy(expected_p1, 1 - expected_p1), atol=5e-3)
    assert result.vote_entropy.dtype == np.float32 and result.predictive_entropy.dtype == np.float32


def test_member_crops_are_undone_with_background_outside(image):
    # 12 x 14 in-plane; crop (8, 8) keeps rows 2..9 and columns 3..10 (index n//2 -> m//2 rule);
    # crop (16, 10) pads rows (all kept) and keeps columns 2..11.
    window = Window(level=50, width=400)
    members = [member(0.5, window, crop_yx=(8, 8)), member(0.4, window, crop_yx=(16, 10))]
    result = predict_case(members, image, keep_mean_prob=True, keep_member_labels=True)
    assert members[0].model.seen and set(members[0].model.seen) == {(8, 8, 8)}
    inside_a = np.zeros(image.shape[1:], bool)
    inside_a[2:10, 3:11] = True
    inside_b = np.zeros(image.shape[1:], bool)
    inside_b[:, 2:12] = True
    a, b = p1(members[0], image), p1(members[1], image)
    expected = (np.where(inside_a, a, 0) + np.where(inside_b, b, 0)) / 2
    np.testing.assert_allclose(result.mean_prob[1], expected, atol=2e-3)
    np.testing.assert_allclose(result.mean_prob[0], 1 - expected, atol=2e-3)
    # Columns 0, 1, 12, 13 lie outside both crops: certain background.
    outside = ~(inside_a | inside_b)
    assert outside.sum() == 4 * 12
    assert not result.labels[:, outside].any()
    assert not result.vote_entropy[:, outside].any() and not result.predictive_entropy[:, outside].any()
    assert not result.member_labels[0][:, ~inside_a].any()


def test_single_member_has_zero_vote_entropy_and_optional_outputs_are_none(image):
    result = predict_case([member(0.5, Window(level=50, width=400))], image)
    assert result.mean_prob is None and result.member_labels is None
    assert not result.vote_entropy.any()
    assert result.predictive_entropy.max() > 0.5


def test_patch_size_comes_from_each_checkpoint_unless_given(image):
    window = Window(level=50, width=400)
    members = [member(0.5, window, patch=(8, 8, 16)), member(0.5, window, patch=(16, 8, 8))]
    predict_case(members, image)
    assert set(members[0].model.seen) == {(8, 8, 16)} and set(members[1].model.seen) == {(16, 8, 8)}
    predict_case(members, image, patch_size=(8, 16, 8))
    assert members[0].model.seen[-1] == (8, 16, 8)
    no_patch = LoadedModel(model=Threshold(0.5), model_config=ModelConfig(num_classes=2), intensity=window,
                           crop_yx=None, meta={"config": {}})
    with pytest.raises(ValueError, match="patch_size"):
        predict_case([no_patch], image)


def test_bad_ensembles_are_rejected(image):
    window = Window(level=50, width=400)
    with pytest.raises(ValueError, match="at least one"):
        predict_case([], image)
    other = LoadedModel(model=Threshold(0.5), model_config=ModelConfig(num_classes=3), intensity=window,
                        crop_yx=None, meta={"config": {"patch_size": [8, 8, 8]}})
    with pytest.raises(ValueError, match="number of classes"):
        predict_case([member(0.5, window), other], image)
    with pytest.raises(ValueError, match="predicted 2 classes"):
        predict_case([other], image)
    with pytest.raises(ValueError, match="image_hu"):
        predict_case([member(0.5, window)], image[0])


@pytest.mark.parametrize("mode", ["gaussian", "reference"])
def test_members_with_different_windows_are_fused_slice_for_slice(image, mode):
    # Different slab depths give different streaming schedules; pointwise members make the result exact.
    members = [member(0.3, Window(level=50, width=400), patch=(4, 8, 8)),
               member(0.6, Window(level=100, width=300), patch=(8, 8, 8)),
               member(0.5, Window(level=0, width=600), patch=(2, 8, 8))]
    result = predict_case(members, image, mode=mode, keep_mean_prob=True, keep_member_labels=True)
    expected = sum(p1(m, image) for m in members) / 3
    np.testing.assert_allclose(result.mean_prob[1], expected, atol=2e-3)
    sure = np.abs(expected - 0.5) > 0.01
    np.testing.assert_array_equal(result.labels[sure], (expected > 0.5)[sure])
    for index, m in enumerate(members):
        clear = np.abs(p1(m, image) - 0.5) > 0.01
        np.testing.assert_array_equal(result.member_labels[index][clear], (p1(m, image) > 0.5)[clear])


class CountingWindow(Window):
    """A Window that counts how often it transforms an image."""

    calls = 0

    def __call__(self, image):
        CountingWindow.calls += 1
        return super().__call__(image)


def test_members_sharing_crop_and_intensity_share_one_transformed_image(image):
    CountingWindow.calls = 0
    shared = CountingWindow(level=50, width=400)
    members = [member(0.3, shared), member(0.6, shared), member(0.5, shared, crop_yx=(8, 8))]
    predict_case(members, image)
    assert CountingWindow.calls == 2  # one per (crop, transform) pair


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([[0.2], [0.5], [0.3]], [1]),
        ([[0.4], [0.4], [0.2]], [0]),  # tie: the first class, as argmax
        ([[0.1, 0.6], [0.1, 0.3], [0.8, 0.1]], [2, 0]),
        ([[0.0], [0.0], [0.0]], [0]),
    ],
)
def test_argmax_over_classes_takes_the_first_maximum(values, expected):
    probs = torch.tensor(values, dtype=torch.float32)
    got = _argmax_classes(probs)
    assert got.dtype == torch.uint8 and got.tolist() == expected
    assert got.tolist() == probs.argmax(dim=0).tolist()


# ------------------------------------------------------------------ whole-volume (device) path vs streaming
def _sepnet_member(seed: int, window: Window, crop_yx=None, patch=(8, 16, 16)) -> LoadedModel:
    torch.manual_seed(seed)
    config = ModelConfig(name="sepnet", base=4)
    return LoadedModel(model=config.build().eval(), model_config=config, intensity=window, crop_yx=crop_yx,
                       meta={"path": f"sepnet{seed}", "config": {"patch_size": list(patch)}})


@pytest.mark.parametrize("mode", ["gaussian", "reference"])
@pytest.mark.parametrize("amp", [False, True])
def test_whole_volume_path_equals_streaming_path(mode, amp):
    """The device path (accumulators, fusion, argmax and entropies on the members' device) run on the
    CPU gives the streaming slab path's labels exactly and its probabilities to rounding."""
    torch.set_num_threads(1)
    image = np.random.default_rng(1).uniform(-1000, 1200, size=(19, 28, 30)).astype(np.float32)
    members = [_sepnet_member(0, Window(level=40, width=400)),
               _sepnet_member(1, Window(level=40, width=400), crop_yx=(24, 32)),
               _sepnet_member(2, Window(level=300, width=1500), crop_yx=(16, 16))]
    kwargs = dict(mode=mode, amp=amp, batch_size=2, keep_mean_prob=True, keep_member_labels=True)
    streamed = predict_case(members, image, stream=True, **kwargs)
    whole = predict_case(members, image, stream=False, **kwargs)
    np.testing.assert_array_equal(whole.labels, streamed.labels)
    np.testing.assert_array_equal(whole.member_labels, streamed.member_labels)
    np.testing.assert_allclose(whole.mean_prob, streamed.mean_prob, atol=1e-6)
    np.testing.assert_allclose(whole.vote_entropy, streamed.vote_entropy, atol=1e-6)
    np.testing.assert_allclose(whole.predictive_entropy, streamed.predictive_entropy, atol=1e-5)
    assert len(np.unique(whole.labels)) > 2  # random networks: several classes, not a vacuous comparison
    assert (whole.vote_entropy > 0).any()


def test_progress_counts_every_window():
    from sepnet_core.inference.sliding import count_windows

    image = np.zeros((19, 28, 30), np.float32)
    members = [_sepnet_member(0, Window(level=40, width=400)),
               _sepnet_member(1, Window(level=40, width=400), crop_yx=(24, 32))]
    expected = count_windows((19, 28, 30), (8, 16, 16)) + count_windows((19, 24, 32), (8, 16, 16))
    for stream in (True, False):
        done: list[int] = []
        predict_case(members, image, batch_size=3, stream=stream, progress=done.append)
        assert sum(done) == expected and max(done) <= 3


def test_inference_does_not_import_training():
    """Nothing under sepnet_core/inference/ needs the training package (fresh interpreter)."""
    import subprocess
    import sys
    from pathlib import Path

    modules = sorted(p.stem for p in (Path(__file__).parents[1] / "sepnet_core" / "inference").glob("*.py"))
    code = ("import sys\n"
            f"for name in {modules!r}:\n"
            "    __import__('sepnet_core.inference' + ('' if name == '__init__' else '.' + name))\n"
            "bad = sorted(m for m in sys.modules if m.startswith('sepnet_core.training'))\n"
            "assert 'sepnet_core.inference.on_device' in sys.modules\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"sepnet_core.inference imports {out.stdout.strip()}"


def test_segment_keeps_the_roi_subset_and_takes_loaded_members():
    from sepnet_core.inference import segment
    from sepnet_core.organs import ORGANS

    torch.set_num_threads(1)
    image = np.random.default_rng(2).uniform(-1000, 1200, size=(12, 20, 20)).astype(np.float32)
    members = [_sepnet_member(0, Window(level=40, width=400)), _sepnet_member(1, Window(level=40, width=400))]
    full = segment(image, members, device="cpu", amp=False, probabilities=True)
    assert full.uncertainty_kind == "vote_entropy" and full.num_members == 2
    assert full.probabilities.shape == (23, *image.shape) and full.settings["amp"] is False
    found = [o.key for o in ORGANS if (full.labels == o.label).any()]
    assert len(found) >= 2
    subset = segment(image, members, device="cpu", amp=False, roi_subset=found[:1])
    keep = full.labels == ORGANS[[o.key for o in ORGANS].index(found[0])].label
    np.testing.assert_array_equal(subset.labels, np.where(keep, full.labels, 0))
    with pytest.raises(ValueError, match="unknown organ"):
        segment(image, members, device="cpu", roi_subset=["spleen"])
    single = segment(image, members[:1], device="cpu", amp=False)
    assert single.uncertainty_kind == "predictive_entropy" and single.uncertainty is single.predictive_entropy
    both = segment(image, members, device="cpu", amp=False, member_labels=True)
    reference = predict_case(members, image, amp=False, keep_member_labels=True)
    np.testing.assert_array_equal(both.member_labels, reference.member_labels)
    np.testing.assert_array_equal(both.uncertainty, reference.vote_entropy)
    np.testing.assert_array_equal(both.predictive_entropy, reference.predictive_entropy)

"""Sliding-window stitching (sepnet_core.inference.sliding), tested with predictors that need no model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sepnet_core.inference.sliding import gaussian_importance_map, predict_slabs, predict_volume, shift_out_


def pointwise(x: torch.Tensor) -> torch.Tensor:
    """Logits (x, -x): softmax p0 = sigmoid(2 x) per voxel, whatever window the voxel is seen in."""
    return torch.cat([x, -x], dim=1)


class Recorder:
    """Per-window constant logits (s, 0), s = the window's first-slice maximum (its start on a z ramp)."""

    def __init__(self, divisor: int = 1) -> None:
        self.starts: list[float] = []
        self.shapes: list[tuple[int, ...]] = []
        self.divisor = divisor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if any(s % self.divisor for s in x.shape[2:]):
            raise ValueError(f"size {tuple(x.shape[2:])} not divisible by {self.divisor}")
        self.shapes += [tuple(x.shape[2:])] * x.shape[0]
        s = x[:, 0, 0].amax(dim=(1, 2))  # (B,)
        self.starts += s.tolist()
        first = s.reshape(-1, 1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
        return torch.cat([first, torch.zeros_like(first)], dim=1)


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-np.asarray(v, dtype=np.float64)))


def z_ramp(shape):
    return np.broadcast_to(np.arange(shape[0], dtype=np.float32)[:, None, None], shape).copy()


@pytest.mark.parametrize("mode", ["gaussian", "reference"])
@pytest.mark.parametrize(
    ("shape", "patch", "overlap"),
    [
        ((20, 33, 17), (8, 16, 16), 0.5),  # several windows, borders not on the grid
        ((21, 40, 24), (8, 16, 8), 0.25),
        ((16, 16, 16), (16, 16, 16), 0.0),  # exactly one window
        ((5, 7, 9), (8, 16, 16), 0.5),  # smaller than the patch in every axis
        ((30, 6, 40), (16, 8, 8), 0.75),  # smaller in one axis only
    ],
)
def test_pointwise_predictor_is_stitched_exactly_everywhere(mode, shape, patch, overlap):
    volume = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    probs = predict_volume(pointwise, volume, patch, overlap=overlap if mode == "gaussian" else None,
                           mode=mode, out_dtype=np.float32)
    assert probs.shape == (2, *shape) and probs.dtype == np.float32
    np.testing.assert_allclose(probs[0], sigmoid(2 * volume), atol=2e-6)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=2e-6)


def test_float16_output_and_channel_first_tensor_input():
    volume = torch.randn(1, 9, 10, 11)
    probs = predict_volume(pointwise, volume, (8, 8, 8))
    assert probs.dtype == np.float16 and probs.shape == (2, 9, 10, 11)
    np.testing.assert_allclose(probs[0].astype(np.float32), sigmoid(2 * volume[0].numpy()), atol=1e-3)


def test_reference_mode_averages_every_slab_covering_a_slice():
    # D = 20, slabs of 16, stride 2 -> slabs start at 0, 2, 4; in-plane 12 x 10 padded to 16 x 16.
    rec = Recorder(divisor=8)
    probs = predict_volume(rec, z_ramp((20, 12, 10)), (16, 64, 64), mode="reference", out_dtype=np.float32)
    assert rec.starts == [0.0, 2.0, 4.0]
    assert set(rec.shapes) == {(16, 16, 16)}
    covering = {z: [s for s in (0, 2, 4) if s <= z < s + 16] for z in range(20)}
    assert covering[0] == [0] and covering[5] == [0, 2, 4] and covering[17] == [2, 4] and covering[19] == [4]
    expected = np.array([np.mean(sigmoid(covering[z])) for z in range(20)])
    np.testing.assert_allclose(probs[0, :, 3, 7], expected, atol=1e-6)
    np.testing.assert_allclose(probs[0], np.broadcast_to(expected[:, None, None], (20, 12, 10)), atol=1e-6)


def test_gaussian_mode_weights_overlapping_windows_by_the_importance_map():
    # D = 12, windows of 8, overlap 0.5 -> starts 0 and 4; in-plane factors cancel (same for both).
    rec = Recorder()
    probs = predict_volume(rec, z_ramp((12, 8, 8)), (8, 8, 8), overlap=0.5, out_dtype=np.float32)
    assert rec.starts == [0.0, 4.0]
    g = np.exp(-((np.arange(8) - 3.5) ** 2) / 2.0)  # sigma = 0.125 * 8 = 1 voxel
    expected = np.empty(12)
    for z in range(12):
        w0 = g[z] if z < 8 else 0.0
        w4 = g[z - 4] if z >= 4 else 0.0
        expected[z] = (w0 * sigmoid(0.0) + w4 * sigmoid(4.0)) / (w0 + w4)
    np.testing.assert_allclose(probs[0, :, 2, 5], expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("overlap", "starts"), [(0.0, [0, 8, 12]), (0.5, [0, 4, 8, 12]), (0.875, list(range(13)))]
)
def test_overlap_sets_the_stride(overlap, starts):
    rec = Recorder()
    predict_volume(rec, z_ramp((20, 8, 8)), (8, 8, 8), overlap=overlap)
    assert rec.starts == [float(s) for s in starts]


def test_gaussian_importance_map_is_separable_positive_and_peaks_at_one():
    w = gaussian_importance_map((8, 16, 5))
    assert w.shape == (8, 16, 5) and w.dtype == torch.float32
    assert float(w.max()) == pytest.approx(1.0) and float(w.min()) > 0
    # Corner: per axis exp(-(d_edge^2 - d_peak^2) / (2 sigma^2)), sigma = n / 8, peak normalised to 1.
    corner = math.exp(-(3.5**2 - 0.5**2) / 2) * math.exp(-(7.5**2 - 0.5**2) / 8) * math.exp(-(2**2) / 0.78125)
    assert float(w[0, 0, 0]) == pytest.approx(corner, rel=1e-5)
    assert float(w[4, 8, 2]) == pytest.approx(1.0) and float(w[3, 8, 2]) == pytest.approx(1.0)
    torch.testing.assert_close(w, w.flip(0).flip(1).flip(2))


@pytest.mark.parametrize("mode", ["gaussian", "reference"])
@pytest.mark.parametrize("batch_size", [2, 3, 100])
def test_batch_size_does_not_change_the_stitching(mode, batch_size):
    volume = np.random.default_rng(3).normal(size=(21, 19, 30)).astype(np.float32)
    volume[:, 0, 0] = np.arange(21)  # the Recorder sees each window's start
    args = {"patch_size": (8, 8, 16), "mode": mode, "out_dtype": np.float32}
    one = predict_volume(Recorder(), volume, batch_size=1, **args)
    many = predict_volume(Recorder(), volume, batch_size=batch_size, **args)
    np.testing.assert_array_equal(one, many)
    exact = predict_volume(pointwise, volume, batch_size=batch_size, **args)
    np.testing.assert_allclose(exact[0], sigmoid(2 * volume), atol=2e-6)


def test_batch_size_does_not_change_the_result_of_a_real_network():
    # The network itself differs by ~1e-4 between batched and single CPU convolutions.
    from sepnet_core.models import build_model

    torch.manual_seed(0)
    model = build_model("sepnet", base=2, num_classes=3).eval()
    volume = np.random.default_rng(2).normal(size=(12, 20, 10)).astype(np.float32)
    for mode in ("gaussian", "reference"):
        one = predict_volume(model, volume, (8, 16, 8), mode=mode, batch_size=1, out_dtype=np.float32)
        many = predict_volume(model, volume, (8, 16, 8), mode=mode, batch_size=3, out_dtype=np.float32)
        assert one.shape == (3, 12, 20, 10)
        np.testing.assert_allclose(one, many, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "nearest"}, ValueError, "gaussian, reference"),
        ({"overlap": 1.0}, ValueError, "overlap"),
        ({"overlap": -0.1}, ValueError, "overlap"),
        ({"patch_size": (8, 8)}, ValueError, "patch_size"),
        ({"patch_size": (8, 0, 8)}, ValueError, "patch_size"),
        ({"patch_size": (8, 8.5, 8)}, ValueError, "patch_size"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"volume": np.zeros((2, 3))}, ValueError, "volume"),
        ({"volume": np.zeros((4, 4, 4), dtype=object)}, TypeError, "numeric"),
        ({"model": lambda x: x[:, :, :4]}, ValueError, "model output shape"),
    ],
)
def test_bad_arguments_are_rejected_with_a_named_message(kwargs, error, match):
    args = {"model": pointwise, "volume": np.zeros((8, 8, 8), np.float32), "patch_size": (8, 8, 8)} | kwargs
    with pytest.raises(error, match=match):
        predict_volume(**args)


def test_overlap_in_reference_mode_warns():
    with pytest.warns(UserWarning, match="no effect"):
        predict_volume(pointwise, np.zeros((16, 8, 8), np.float32), (16, 8, 8), overlap=0.5, mode="reference")


# ---------------------------------------------------------------- streaming (predict_slabs)


class Counter:
    """Pointwise logits (x, -x) that counts the windows it has seen."""

    def __init__(self) -> None:
        self.windows = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.windows += x.shape[0]
        return pointwise(x)


@pytest.mark.parametrize(
    ("mode", "shape", "patch", "windows", "slab_sizes"),
    [
        # D = 36, windows of 16 at stride 8: starts 0, 8, 16, 20; slices are final at 8, 16, 20, then 36.
        ("gaussian", (36, 8, 8), (16, 8, 8), 4, [8, 8, 4, 16]),
        # stride 2: starts 0, 2, 4 (D = 20); final at 2, 4, then the last 16 slices.
        ("reference", (20, 8, 8), (16, 8, 8), 3, [2, 2, 16]),
        # padded volume (D = 5 < 8): one window, one slab of the 5 real slices.
        ("gaussian", (5, 8, 8), (8, 8, 8), 1, [5]),
    ],
)
def test_slabs_are_yielded_as_soon_as_they_are_final(mode, shape, patch, windows, slab_sizes):
    volume = np.random.default_rng(4).normal(size=shape).astype(np.float32)
    counter = Counter()
    seen, starts, sizes, parts = [], [], [], []
    for z0, slab in predict_slabs(counter, volume, patch, mode=mode):
        seen.append(counter.windows)
        starts.append(z0)
        sizes.append(slab.shape[1])
        parts.append(slab)
        assert slab.dtype == torch.float32 and slab.shape[2:] == shape[1:]
    assert sizes == slab_sizes and counter.windows == windows
    assert starts == list(np.cumsum([0, *slab_sizes[:-1]]))  # adjoining, in order
    assert seen == sorted(seen) and (len(seen) == 1 or seen[0] < windows)  # before the last window ran
    stitched = torch.cat(parts, dim=1).numpy()
    np.testing.assert_allclose(stitched[0], sigmoid(2 * volume), atol=2e-6)
    np.testing.assert_array_equal(stitched, predict_volume(pointwise, volume, patch, mode=mode,
                                                           out_dtype=np.float32))


def test_slabs_check_arguments_before_any_window_runs():
    counter = Counter()
    with pytest.raises(ValueError, match="patch_size"):
        predict_slabs(counter, np.zeros((8, 8, 8), np.float32), (8, 0, 8))
    with pytest.raises(ValueError, match="num_classes"):
        predict_slabs(counter, np.zeros((8, 8, 8), np.float32), (8, 8, 8), num_classes=0)
    slabs = predict_slabs(counter, np.zeros((8, 8, 8), np.float32), (8, 8, 8), num_classes=3)
    assert counter.windows == 0
    with pytest.raises(ValueError, match="predicted 2 classes, num_classes=3"):
        next(slabs)


@pytest.mark.parametrize(("size", "n", "dim"), [(16, 3, 1), (16, 8, 1), (16, 16, 1), (5, 1, 0), (7, 4, 0)])
def test_shift_out_drops_the_front_and_zeroes_the_tail(size, n, dim):
    buffer = torch.arange(2 * size * 3, dtype=torch.float32).reshape(2, size, 3) + 1
    if dim == 0:
        buffer = buffer[0].clone()
    before = buffer.clone()
    shift_out_(buffer, n, dim=dim)
    kept = before.narrow(dim, n, size - n)
    torch.testing.assert_close(buffer.narrow(dim, 0, size - n), kept)
    assert (buffer.narrow(dim, size - n, n) == 0).all()


def test_shift_out_rejects_a_bad_count():
    with pytest.raises(ValueError, match="n=0"):
        shift_out_(torch.zeros(4, 2), 0, dim=0)
    with pytest.raises(ValueError, match="n=5"):
        shift_out_(torch.zeros(4, 2), 5, dim=0)

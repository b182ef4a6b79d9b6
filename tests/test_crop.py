"""Tests of the in-plane centre crop/pad and its inverse (sepnet_core.data.crop)."""

from __future__ import annotations

import numpy as np
import pytest

from sepnet_core.data.crop import CropPad, center_crop_pad, undo_crop_pad

# (input size n, output size m, offset: output index i shows input index i + offset), by hand.
OFFSETS = [
    (512, 256, 128),  # the reference: keep rows 128..383
    (5, 5, 0),
    (5, 2, 1),
    (4, 3, 1),
    (6, 1, 3),
    (4, 6, -1),
    (3, 6, -2),
    (3, 4, -1),
    (4, 5, 0),
    (1, 4, -2),
]


@pytest.mark.parametrize(("n", "m", "offset"), OFFSETS)
@pytest.mark.parametrize("axis", [0, 1])
def test_offsets_and_content_per_axis(n: int, m: int, offset: int, axis: int) -> None:
    shape = (n, 3) if axis == 0 else (3, n)
    volume = np.arange(1, 1 + 3 * n, dtype=np.int32).reshape(shape)
    size = (m, 3) if axis == 0 else (3, m)
    out, info = center_crop_pad(volume, size, fill=-7)
    assert out.shape == size and out.dtype == np.int32
    assert info.offset_yx[axis] == offset and info.offset_yx[1 - axis] == 0
    for i in range(m):
        source = i + offset
        got = out[i, :] if axis == 0 else out[:, i]
        if 0 <= source < n:
            np.testing.assert_array_equal(got, volume[source, :] if axis == 0 else volume[:, source])
        else:
            assert (got == -7).all()


def test_crop_one_axis_pad_the_other_by_hand() -> None:
    volume = np.arange(20).reshape(1, 5, 4)
    out, info = center_crop_pad(volume, (3, 6), fill=-1)
    expected = np.array([[[-1, 4, 5, 6, 7, -1],
                          [-1, 8, 9, 10, 11, -1],
                          [-1, 12, 13, 14, 15, -1]]])
    np.testing.assert_array_equal(out, expected)
    assert info == CropPad(original_yx=(5, 4), size_yx=(3, 6), offset_yx=(1, -1))
    restored = undo_crop_pad(out, info, fill=-9)
    expected_restored = np.array([[[-9, -9, -9, -9],
                                   [4, 5, 6, 7],
                                   [8, 9, 10, 11],
                                   [12, 13, 14, 15],
                                   [-9, -9, -9, -9]]])
    np.testing.assert_array_equal(restored, expected_restored)


@pytest.mark.parametrize("original", [(5, 4), (4, 5), (7, 7), (2, 9)])
@pytest.mark.parametrize("size", [(3, 6), (6, 3), (8, 8), (1, 1), (4, 5)])
def test_undo_is_exact_on_kept_region(original: tuple[int, int], size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(2, *original)).astype(np.float32) + 10.0  # never equal to fill 0
    out, info = center_crop_pad(volume, size)
    restored = undo_crop_pad(out, info)
    kept = restored != 0
    np.testing.assert_array_equal(restored[kept], volume[kept])
    rows = min(original[0], size[0])
    cols = min(original[1], size[1])
    assert kept.sum() == 2 * rows * cols  # every voxel inside both grids survives
    again, _ = center_crop_pad(restored, size)
    np.testing.assert_array_equal(again, out)


def test_pure_padding_round_trip_is_identity() -> None:
    volume = np.arange(3 * 5 * 4, dtype=np.int16).reshape(3, 5, 4)
    out, info = center_crop_pad(volume, (8, 7), fill=-1000)
    np.testing.assert_array_equal(undo_crop_pad(out, info, fill=-1000), volume)


def test_probability_map_restored_with_record_of_volume_crop() -> None:
    volume = np.zeros((2, 6, 6), dtype=np.float32)
    _, info = center_crop_pad(volume, (4, 4))
    probs = np.ones((3, 2, 4, 4), dtype=np.float32)  # (C, z, y, x)
    restored = undo_crop_pad(probs, info, fill=0.0)
    assert restored.shape == (3, 2, 6, 6)
    assert restored[:, :, 1:5, 1:5].min() == 1.0
    assert restored.sum() == 3 * 2 * 16


def test_output_is_a_copy() -> None:
    volume = np.ones((1, 4, 4), dtype=np.uint8)
    out, _ = center_crop_pad(volume, (4, 4))
    out[:] = 5
    assert volume.max() == 1


@pytest.mark.parametrize(
    ("volume", "size", "fill", "fragment"),
    [
        (np.zeros(4), (2, 2), 0, "at least 2 axes"),
        (np.zeros((2, 2)), (0, 2), 0, "size_yx"),
        (np.zeros((2, 2)), (2,), 0, "size_yx"),
        (np.zeros((2, 2)), (2.5, 2), 0, "size_yx"),
        (np.zeros((2, 2), dtype=np.uint8), (4, 4), -1, "fill"),
        (np.zeros((2, 2), dtype=np.int16), (4, 4), 0.5, "fill"),
    ],
)
def test_bad_arguments(volume: np.ndarray, size, fill, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        center_crop_pad(volume, size, fill=fill)


def test_undo_rejects_wrong_size_and_wrong_record() -> None:
    _, info = center_crop_pad(np.zeros((3, 5, 5)), (4, 4))
    with pytest.raises(ValueError, match="size_yx"):
        undo_crop_pad(np.zeros((3, 4, 5)), info)
    with pytest.raises(TypeError, match="CropPad"):
        undo_crop_pad(np.zeros((3, 4, 4)), {"size_yx": (4, 4)})
    with pytest.raises(ValueError, match="no overlap"):
        CropPad(original_yx=(4, 4), size_yx=(2, 2), offset_yx=(4, 0))


def test_croppad_dict_round_trip() -> None:
    info = CropPad(original_yx=(512, 500), size_yx=(256, 256), offset_yx=(128, 122))
    assert CropPad.from_dict(info.to_dict()) == info

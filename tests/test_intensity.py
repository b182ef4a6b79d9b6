"""Tests for sepnet_core.intensity: SLF / Window point values, backends, validation, serialisation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sepnet_core.intensity import (
    PRESETS,
    SLF,
    Window,
    get_intensity,
    intensity_from_dict,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# (preset, HU, expected) computed by hand from the breakpoints in shared/paper.md
POINT_CASES = [
    # SLF-1: [-500, -100, 400, 1500] -> [0, 0.1, 0.8, 1.0]
    ("slf1", -2000.0, 0.0),  # below t_0 -> v_0
    ("slf1", -500.0, 0.0),
    ("slf1", -300.0, 0.05),  # halfway -500..-100: 0 + 0.1 / 2
    ("slf1", -100.0, 0.1),
    ("slf1", 150.0, 0.45),  # halfway -100..400: 0.1 + 0.7 / 2
    ("slf1", 400.0, 0.8),
    ("slf1", 675.0, 0.85),  # quarter of 400..1500: 0.8 + 0.2 / 4
    ("slf1", 1500.0, 1.0),
    ("slf1", 3071.0, 1.0),  # above t_K -> v_K
    # SLF-2: [-500, -100, 100, 600, 1500] -> [0, 0.1, 0.7, 0.9, 1.0]
    ("slf2", -1024.0, 0.0),
    ("slf2", 0.0, 0.4),  # halfway -100..100: 0.1 + 0.6 / 2
    ("slf2", 100.0, 0.7),
    ("slf2", 350.0, 0.8),  # halfway 100..600
    ("slf2", 1050.0, 0.95),  # halfway 600..1500
    ("slf2", 5000.0, 1.0),
    # SLF-3 (ours): [-1000, -400, -100, 200, 1000, 2000] -> [0, .3, .35, .45, .85, 1]
    ("slf3", -1024.0, 0.0),
    ("slf3", -700.0, 0.15),  # halfway -1000..-400
    ("slf3", 50.0, 0.4),  # halfway -100..200
    ("slf3", 600.0, 0.65),  # halfway 200..1000
    ("slf3", 1500.0, 0.925),  # halfway 1000..2000
    ("slf3", 2500.0, 1.0),
    # windows: clip to [L - W/2, L + W/2], scale
    ("brain", -100.0, 0.0),  # below 0 HU
    ("brain", 0.0, 0.0),
    ("brain", 20.0, 0.25),
    ("brain", 40.0, 0.5),
    ("brain", 80.0, 1.0),
    ("brain", 1000.0, 1.0),
    ("soft_tissue", -160.0, 0.0),
    ("soft_tissue", 140.0, 0.75),  # (140 + 160) / 400
    ("bone", -1000.0, 0.0),
    ("bone", 400.0, 0.5),
    ("bone", 1400.0, 1.0),
]


@pytest.mark.parametrize("name, hu, expected", POINT_CASES)
def test_point_values_numpy_and_torch(name, hu, expected):
    transform = get_intensity(name)
    out_np = transform(np.array([hu]))
    out_t = transform(torch.tensor([hu]))
    assert out_np.dtype == np.float32 and out_t.dtype == torch.float32
    assert out_np[0] == pytest.approx(expected, abs=1e-6)
    assert out_t[0].item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_exact_targets_at_breakpoints_and_backends_agree(name):
    transform = PRESETS[name]
    if isinstance(transform, SLF):
        t = np.array(transform.breakpoints_hu)
        expected = np.array(transform.targets, dtype=np.float32)
        np.testing.assert_array_equal(transform(t), expected)
        np.testing.assert_array_equal(transform(torch.tensor(t)).numpy(), expected)
    hu = np.linspace(-1500.0, 3000.0, 9001)
    a = transform(hu)
    b = transform(torch.from_numpy(hu)).numpy()
    np.testing.assert_allclose(a, b, atol=2e-7)
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert np.all(np.diff(a) >= 0), "intensity maps must be monotone non-decreasing"


def test_paper_presets_have_the_published_breakpoints():
    assert PRESETS["slf1"].breakpoints_hu == (-500, -100, 400, 1500)
    assert PRESETS["slf1"].targets == (0.0, 0.1, 0.8, 1.0)
    assert PRESETS["slf2"].breakpoints_hu == (-500, -100, 100, 600, 1500)
    assert PRESETS["slf2"].targets == (0.0, 0.1, 0.7, 0.9, 1.0)
    assert (PRESETS["soft_tissue"].width, PRESETS["soft_tissue"].level) == (400, 40)
    assert (PRESETS["brain"].width, PRESETS["brain"].level) == (80, 40)
    assert (PRESETS["bone"].width, PRESETS["bone"].level) == (2000, 400)
    assert set(PRESETS) == {"slf1", "slf2", "slf3", "soft_tissue", "brain", "bone"}


def test_slf3_stresses_air_and_bone_more_than_soft_tissue():
    """Our design claim: SLF-3's slope is steeper on air and bone than on soft tissue, unlike SLF-1."""

    def slope(transform, lo, hi):
        y = transform(np.array([lo, hi], dtype=np.float64))
        return float(y[1] - y[0]) / (hi - lo)

    slf1, slf3 = PRESETS["slf1"], PRESETS["slf3"]
    assert slope(slf3, -900, -500) > slope(slf3, 0, 100)  # middle-ear air vs soft tissue
    assert slope(slf3, 300, 900) > slope(slf3, 0, 100)  # mandible / TMJ bone vs soft tissue
    assert slope(slf1, -900, -500) == 0.0 and slope(slf3, -900, -500) > 0.0
    assert slope(slf1, 1600, 1900) == 0.0 and slope(slf3, 1600, 1900) > 0.0  # otic capsule


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32, np.float64])
def test_numpy_dtype_and_shape(dtype):
    x = np.arange(-1000, 1400, 100, dtype=dtype).reshape(2, 3, 4)  # (z, y, x), -1000..1300 HU
    x[-1, -1, -1] = 1600  # above t_K of SLF-1 and the brain window
    for transform in (PRESETS["slf1"], PRESETS["brain"]):
        out = transform(x)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (2, 3, 4)
        assert out[0, 0, 0] == 0.0 and out[-1, -1, -1] == 1.0  # -1000 HU and 1600 HU


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.int16, torch.float16, torch.float32, torch.float64])
def test_torch_dtype_shape_device(device, dtype):
    x = torch.tensor([-1000, -300, 20, 1300], dtype=dtype, device=device).reshape(1, 1, 1, 2, 2)
    cases = (
        # SLF-1: clipped; 0.1 / 2; 0.1 + 120 * 0.7 / 500; 0.8 + 900 * 0.2 / 1100
        (PRESETS["slf1"], [0.0, 0.05, 0.268, 0.8 + 900 * 0.2 / 1100]),
        # brain W80/L40 = [0, 80] HU: clipped, clipped, 20 / 80, clipped
        (PRESETS["brain"], [0.0, 0.0, 0.25, 1.0]),
    )
    for transform, expected in cases:
        out = transform(x)
        assert out.dtype == torch.float32 and out.shape == x.shape and out.device == x.device
        np.testing.assert_allclose(out.flatten().cpu().numpy(), expected, atol=1e-6)


def test_torch_output_is_differentiable_with_the_segment_slope():
    x = torch.tensor([-300.0, 150.0, -900.0, 2000.0], requires_grad=True)
    PRESETS["slf1"](x).sum().backward()
    # slopes: 0.1 / 400 on -500..-100, 0.7 / 500 on -100..400, 0 where clipped
    np.testing.assert_allclose(x.grad.numpy(), [0.1 / 400, 0.7 / 500, 0.0, 0.0], rtol=1e-5)


def test_nan_propagates_in_both_backends():
    for transform in (PRESETS["slf2"], PRESETS["bone"]):
        assert math.isnan(transform(np.array([np.nan]))[0])
        assert math.isnan(transform(torch.tensor([float("nan")]))[0].item())


@pytest.mark.parametrize("bad", [[0.0, 100.0], (1, 2), 5.0, "x", None, np.array([True, False])])
def test_non_array_input_raises_type_error_naming_the_type(bad):
    with pytest.raises(TypeError, match=type(bad).__name__ if not isinstance(bad, np.ndarray) else "bool"):
        PRESETS["slf1"](bad)
    with pytest.raises(TypeError):
        PRESETS["brain"](bad)


def test_bool_tensor_is_rejected():
    with pytest.raises(TypeError, match="bool"):
        PRESETS["slf1"](torch.zeros(3, dtype=torch.bool))


SLF_ERRORS = [
    # (breakpoints, targets, exception, words that must appear in the message)
    ([0.0], [0.0], ValueError, ["breakpoints_hu", "at least 2", "1"]),
    ([0.0, 1.0, 2.0], [0.0, 1.0], ValueError, ["targets", "same length", "3"]),
    ([0.0, 0.0], [0.0, 1.0], ValueError, ["breakpoints_hu", "strictly increasing", "[0, 0]"]),
    ([10.0, -10.0], [0.0, 1.0], ValueError, ["breakpoints_hu", "strictly increasing", "[10, -10]"]),
    ([0.0, 1.0, 2.0], [0.0, 0.6, 0.5], ValueError, ["targets", "non-decreasing", "0.5"]),
    ([0.0, 1.0], [0.0, 1.5], ValueError, ["targets", "[0, 1]", "1.5"]),
    ([0.0, 1.0], [-0.1, 1.0], ValueError, ["targets", "[0, 1]", "-0.1"]),
    ([0.0, math.inf], [0.0, 1.0], ValueError, ["breakpoints_hu[1]", "finite", "inf"]),
    ([0.0, 1.0], [0.0, math.nan], ValueError, ["targets[1]", "finite", "nan"]),
    ([0.0, "1"], [0.0, 1.0], TypeError, ["breakpoints_hu[1]", "'1'", "str"]),
    ([0.0, True], [0.0, 1.0], TypeError, ["breakpoints_hu[1]", "bool"]),
    (5.0, [0.0, 1.0], TypeError, ["breakpoints_hu", "float"]),
]


@pytest.mark.parametrize("breakpoints, targets, exc, words", SLF_ERRORS)
def test_slf_validation_messages(breakpoints, targets, exc, words):
    with pytest.raises(exc) as info:
        SLF(breakpoints, targets)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


WINDOW_ERRORS = [
    (40.0, 0.0, ValueError, ["width", "> 0", "0"]),
    (40.0, -80.0, ValueError, ["width", "> 0", "-80"]),
    (math.nan, 80.0, ValueError, ["level", "finite", "nan"]),
    (40.0, math.inf, ValueError, ["width", "finite", "inf"]),
    ("40", 80.0, TypeError, ["level", "str"]),
]


@pytest.mark.parametrize("level, width, exc, words", WINDOW_ERRORS)
def test_window_validation_messages(level, width, exc, words):
    with pytest.raises(exc) as info:
        Window(level, width)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_flat_segment_is_allowed_and_values_are_normalised_to_float_tuples():
    slf = SLF(np.array([-100, 0, 100]), [0.2, 0.2, 1], name="flat")
    assert slf.breakpoints_hu == (-100.0, 0.0, 100.0) and all(type(v) is float for v in slf.targets)
    np.testing.assert_allclose(slf(np.array([-50.0, 50.0])), [0.2, 0.6], atol=1e-7)
    assert slf == SLF([-100, 0, 100], [0.2, 0.2, 1.0], name="flat")  # list vs ndarray input: equal
    with pytest.raises(AttributeError):
        slf.name = "other"  # frozen


CUSTOM = [
    SLF([-1024.5, 0.1 + 0.2, 3071], [0.0, 1 / 3, 1.0], name="odd floats"),
    SLF([0, 1], [0, 1]),
    Window(level=-600.25, width=1500.125, name="lung"),
]


@pytest.mark.parametrize("transform", list(PRESETS.values()) + CUSTOM, ids=str)
def test_json_round_trip_is_exact(transform):
    d = json.loads(json.dumps(transform.to_dict()))
    assert d["kind"] == ("slf" if isinstance(transform, SLF) else "window")
    back = intensity_from_dict(d)
    assert back == transform and type(back) is type(transform)
    hu = np.linspace(-2000, 3000, 501)
    np.testing.assert_array_equal(back(hu), transform(hu))


def test_repr_evaluates_back_and_describe_is_readable():
    slf = PRESETS["slf1"]
    assert eval(repr(slf), {"SLF": SLF}) == slf
    assert slf.describe() == "SLF 'slf1': HU [-500, -100, 400, 1500] -> [0, 0.1, 0.8, 1]"
    assert str(PRESETS["brain"]) == "Window 'brain': W80/L40 HU (clip to [0, 80] HU, scale to [0, 1])"
    assert SLF([0, 1], [0, 1]).describe() == "SLF: HU [0, 1] -> [0, 1]"


@pytest.mark.parametrize(
    "d, words",
    [
        ({"kind": "sigmoid", "level": 1}, ["sigmoid", "slf", "window"]),
        ({"level": 40, "width": 80}, ["None", "slf", "window"]),
        ({"kind": "window", "level": 40}, ["missing", "width"]),
        ({"kind": "slf", "breakpoints_hu": [0, 1], "targets": [0, 1], "rgb": "red"}, ["unknown", "rgb"]),
        ({"kind": "window", "level": 40, "width": -1}, ["width", "> 0"]),
    ],
)
def test_intensity_from_dict_errors(d, words):
    with pytest.raises(ValueError) as info:
        intensity_from_dict(d)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_intensity_from_dict_rejects_non_mapping():
    with pytest.raises(TypeError, match="list"):
        intensity_from_dict([("kind", "slf")])


@pytest.mark.parametrize("name", ["SLF1", "slf4", "", "window"])
def test_get_intensity_unknown_lists_valid_names(name):
    with pytest.raises(ValueError) as info:
        get_intensity(name)
    message = str(info.value)
    assert repr(name) in message
    for valid in ("slf1", "slf2", "slf3", "soft_tissue", "brain", "bone"):
        assert valid in message

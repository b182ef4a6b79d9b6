"""Tests for sepnet_core.models: parameter counts, shapes, directions, argument checks, config."""

from __future__ import annotations

import dataclasses
import doctest
import json

import pytest
import torch
from torch import nn

from sepnet_core import models
from sepnet_core.models import (
    DIRECTIONS,
    MODEL_NAMES,
    ModelConfig,
    SeparableResBlock,
    SepNet3D,
    UNet3D,
    build_model,
    count_parameters,
)
from sepnet_core.models import blocks as blocks_module
from sepnet_core.models import config as config_module
from sepnet_core.models import sepnet as sepnet_module
from sepnet_core.models import unet as unet_module

TINY_SHAPE = (1, 1, 8, 16, 16)  # smallest patch with > 1 voxel at 1/8 resolution


def _seed() -> None:
    torch.manual_seed(0)


# ---------------------------------------------------------------- parameter counts (paper.md numbers)


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("sepnet", {}, 2_505_527),
        ("sepnet", {"base": 24, "num_classes": 23, "in_channels": 1}, 2_505_527),
        ("unet", {}, 9_179_207),
        ("unet", {"base": 16}, 4_080_439),
    ],
)
def test_paper_parameter_counts(name: str, kwargs: dict, expected: int) -> None:
    assert count_parameters(build_model(name, **kwargs)) == expected


@pytest.mark.parametrize("direction", sorted(DIRECTIONS))
def test_parameter_count_does_not_depend_on_direction(direction: str) -> None:
    assert count_parameters(SepNet3D(direction=direction)) == 2_505_527


@pytest.mark.parametrize(("cin", "cout"), [(1, 2), (3, 5), (48, 96)])
def test_block_parameter_formula(cin: int, cout: int) -> None:
    expected = 10 * cin * cout + 21 * cout**2 + 5 * cout  # paper.md formula
    assert count_parameters(SeparableResBlock(cin, cout)) == expected


def test_sepnet_count_by_hand_small_base() -> None:
    # b=1, 2 classes, 1 input: blocks (cin, cout) of the reference topology, plus the 1x1x1 head.
    pairs = [(1, 2), (2, 2), (2, 4), (4, 8), (8, 4), (8, 4), (4, 2), (4, 2), (2, 2), (4, 2), (2, 2)]
    expected = sum(10 * i * o + 21 * o * o + 5 * o for i, o in pairs) + (2 * 2 + 2)
    assert count_parameters(SepNet3D(base=1, num_classes=2)) == expected


def test_count_parameters_simple_modules() -> None:
    assert count_parameters(nn.Linear(3, 4)) == 16
    assert count_parameters(nn.Sequential(nn.Conv3d(2, 3, 1), nn.InstanceNorm3d(3))) == 9


def test_no_affine_instance_norm_and_all_convs_biased() -> None:
    model = SepNet3D(base=2)
    norms = [m for m in model.modules() if isinstance(m, nn.InstanceNorm3d)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
    assert len(norms) == 11 * 5 and all(not n.affine for n in norms)
    assert len(convs) == 11 * 5 + 1 and all(c.bias is not None for c in convs)


# ---------------------------------------------------------------- forward / backward smoke

MODEL_CASES = [pytest.param(name, {}, id=name) for name in MODEL_NAMES] + [
    pytest.param("sepnet", {"direction": d}, id=f"sepnet-{d}") for d in sorted(DIRECTIONS)
]


@pytest.mark.parametrize(("name", "extra"), MODEL_CASES)
def test_forward_backward_smoke(name: str, extra: dict) -> None:
    _seed()
    model = build_model(name, base=2, num_classes=5, **extra)
    x = torch.randn(TINY_SHAPE)
    out = model(x)
    assert out.shape == (1, 5, 8, 16, 16)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_returns_logits_not_probabilities(name: str) -> None:
    _seed()
    out = build_model(name, base=2, num_classes=4).eval()(torch.randn(2, 1, 8, 16, 16))
    assert out.shape == (2, 4, 8, 16, 16)
    assert not torch.allclose(out.sum(dim=1), torch.ones(2, 8, 16, 16), atol=1e-3)


def test_in_channels_used() -> None:
    out = build_model("sepnet", base=2, in_channels=3, num_classes=2).eval()(torch.zeros(1, 3, 8, 16, 16))
    assert out.shape == (1, 2, 8, 16, 16)


def test_eval_mode_is_deterministic_and_train_mode_uses_dropout() -> None:
    _seed()
    model = SepNet3D(base=2, num_classes=3)
    x = torch.randn(TINY_SHAPE)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


# ---------------------------------------------------------------- separable directions

# (kz, ky, kx) of the first conv of a block: in-plane kernel; second: through-plane kernel.
EXPECTED_KERNELS = {
    "axial": ((1, 3, 3), (3, 1, 1)),
    "sagittal": ((3, 3, 1), (1, 1, 3)),  # plane (z, y), normal x
    "coronal": ((3, 1, 3), (1, 3, 1)),  # plane (z, x), normal y
}


@pytest.mark.parametrize("direction", sorted(EXPECTED_KERNELS))
def test_direction_kernel_shapes(direction: str) -> None:
    model = SepNet3D(base=2, direction=direction)
    in_plane, through = EXPECTED_KERNELS[direction]
    assert model.conv1.main[0][0].weight.shape == (4, 1, *in_plane)
    main_kernels = [tuple(unit[0].kernel_size) for unit in model.conv6_1.main]
    assert main_kernels == [in_plane, through, in_plane, in_plane]
    assert tuple(model.conv6_1.residual.kernel_size) == (1, 1, 1)


# axial dims (D', H', W') are these input dims: the permuted volume puts the direction's normal first.
TO_AXIAL = {"sagittal": (0, 1, 4, 2, 3), "coronal": (0, 1, 3, 2, 4)}


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(range(len(perm)), key=perm.__getitem__))


@pytest.mark.parametrize("direction", sorted(TO_AXIAL))
def test_direction_equivariance(direction: str) -> None:
    """Direction model on x == axial model (weights permuted the same way) on the permuted x."""
    _seed()
    perm = TO_AXIAL[direction]
    # float64 so that summation-order rounding cannot hide (or fake) a mismatch
    rotated = SepNet3D(base=2, num_classes=3, direction=direction).double().eval()
    axial = SepNet3D(base=2, num_classes=3, direction="axial").double().eval()
    state = {k: (v.permute(perm) if v.ndim == 5 else v) for k, v in rotated.state_dict().items()}
    axial.load_state_dict(state)
    # three different sizes, so a wrong permutation cannot pass
    x = torch.randn(1, 1, 16, 8, 24, dtype=torch.float64)
    with torch.no_grad():
        expected = rotated(x)
        got = axial(x.permute(perm)).permute(_inverse(perm))
    assert got.shape == expected.shape == (1, 3, 16, 8, 24)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    # and the directions really differ: the same weights without the permutation give another result
    with torch.no_grad():
        other = axial(x)
    assert not torch.allclose(other, expected, atol=1e-3)


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize(
    ("arg", "value"),
    [
        ("base", 0),
        ("base", -3),
        ("base", 2.5),
        ("base", True),
        ("in_channels", 0),
        ("num_classes", 0),
        ("num_classes", "23"),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("dropout", "0.5"),
    ],
)
def test_bad_arguments_name_argument_and_value(name: str, arg: str, value: object) -> None:
    with pytest.raises(ValueError) as info:
        build_model(name, **{arg: value})
    assert arg in str(info.value) and repr(value) in str(info.value)


def test_bad_direction_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="'transverse'") as info:
        build_model("sepnet", direction="transverse")
    assert all(d in str(info.value) for d in DIRECTIONS)


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="'vnet'") as info:
        build_model("vnet")
    assert all(n in str(info.value) for n in MODEL_NAMES)
    with pytest.raises(TypeError):
        build_model(None)  # type: ignore[arg-type]


def test_direction_rejected_by_unet() -> None:
    with pytest.raises(TypeError, match="direction") as info:
        build_model("unet", direction="axial")
    assert "'unet'" in str(info.value)
    with pytest.raises(TypeError, match="widht"):
        build_model("sepnet", widht=3)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ((1, 1, 12, 16, 16), "(12, 16, 16)"),
        ((1, 1, 8, 16, 20), "(8, 16, 20)"),
        ((1, 2, 8, 16, 16), "2 channels"),
        ((1, 8, 16, 16), "5-D"),
    ],
)
def test_bad_input_shape(name: str, shape: tuple[int, ...], fragment: str) -> None:
    model = build_model(name, base=1, num_classes=2)
    with pytest.raises(ValueError) as info:
        model(torch.zeros(shape))
    assert fragment in str(info.value)


# ---------------------------------------------------------------- ModelConfig


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(),
        ModelConfig(name="sepnet", base=4, in_channels=2, num_classes=5, direction="sagittal", dropout=0.0),
        ModelConfig(name="unet", base=16, dropout=0.25),
    ],
)
def test_model_config_json_round_trip(cfg: ModelConfig) -> None:
    text = json.dumps(cfg.to_dict())
    back = ModelConfig.from_dict(json.loads(text))
    assert back == cfg
    assert json.loads(text)["name"] == cfg.name


def test_model_config_defaults_are_the_paper() -> None:
    cfg = ModelConfig()
    assert cfg.to_dict() == {
        "name": "sepnet",
        "base": 24,
        "in_channels": 1,
        "num_classes": 23,
        "direction": "axial",
        "dropout": 0.5,
    }
    assert count_parameters(cfg.build()) == 2_505_527
    assert ModelConfig(name="unet").direction is None


def test_model_config_build_matches_fields() -> None:
    model = ModelConfig(base=2, num_classes=4, direction="coronal").build()
    assert isinstance(model, SepNet3D) and model.direction == "coronal" and model.num_classes == 4
    unet = ModelConfig(name="unet", base=2, num_classes=3).build()
    assert isinstance(unet, UNet3D)
    assert count_parameters(unet) == count_parameters(UNet3D(base=2, num_classes=3))


def test_model_config_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="colour") as info:
        ModelConfig.from_dict({"name": "sepnet", "colour": "red"})
    assert "base" in str(info.value)  # lists valid keys
    with pytest.raises(ValueError, match="base.*0"):
        ModelConfig(base=0)
    with pytest.raises(ValueError, match="direction='sagittal'"):
        ModelConfig(name="unet", direction="sagittal")
    with pytest.raises(ValueError, match="'resnet'"):
        ModelConfig(name="resnet")
    with pytest.raises(TypeError):
        ModelConfig.from_dict([("name", "sepnet")])  # type: ignore[arg-type]
    cfg = ModelConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.base = 3  # type: ignore[misc]


# ---------------------------------------------------------------- docstring examples run


@pytest.mark.parametrize(
    "module", [models, blocks_module, config_module, sepnet_module, unet_module], ids=lambda m: m.__name__
)
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, verbose=False)  # type: ignore[arg-type]
    assert result.failed == 0
    assert result.attempted > 0

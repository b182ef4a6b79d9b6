"""Tests of sepnet_core.analysis.cost: FLOPs of hand-counted convolutions, timing on tiny networks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sepnet_core.analysis.claims import PAPER_NUMBERS
from sepnet_core.analysis.cost import COST_COLUMNS, cost_table, count_flops, time_inference, time_train_step
from sepnet_core.losses import build_loss
from sepnet_core.models import build_model, count_parameters, set_fast_path

SHAPE = (1, 2, 4, 8, 8)  # B, C, D, H, W
OUT_VOXELS = 4 * 8 * 8


def conv_flops(cin: int, cout: int, kernel_voxels: int) -> int:
    """Forward FLOPs of a 'same' convolution on SHAPE: 2 per multiply-add, bias not counted."""
    return 2 * cin * cout * kernel_voxels * OUT_VOXELS


def test_single_conv_forward_and_backward():
    conv = nn.Conv3d(2, 3, (1, 3, 3), padding=(0, 1, 1))
    forward = conv_flops(2, 3, 9)  # 27,648
    assert count_flops(conv, SHAPE, backward=False) == forward
    # backward: the weight gradient only (the input needs no gradient), as many FLOPs as the forward
    assert count_flops(conv, SHAPE) == 2 * forward


def test_two_convs_count_the_input_gradient_of_the_second():
    net = nn.Sequential(nn.Conv3d(2, 3, (1, 3, 3), padding=(0, 1, 1)), nn.ReLU(),
                        nn.Conv3d(3, 4, 3, padding=1))
    f1, f2 = conv_flops(2, 3, 9), conv_flops(3, 4, 27)
    assert count_flops(net, SHAPE, backward=False) == f1 + f2
    assert count_flops(net, SHAPE) == (f1 + f2) + (f1 + f2) + f2


def test_meta_count_equals_a_real_run_and_leaves_the_model_alone():
    model = build_model("sepnet", base=2)
    model.eval()
    before = [p.detach().clone() for p in model.parameters()]
    counted = count_flops(model, (1, 1, 8, 16, 16))
    for fast in (True, False):  # FlopCounterMode sees the fast path's direct oneDNN calls too
        real = set_fast_path(build_model("sepnet", base=2), enabled=fast)
        counter = FlopCounterMode(display=False)
        with counter:
            real(torch.zeros(1, 1, 8, 16, 16)).sum().backward()
        assert counted == counter.get_total_flops()
    assert not model.training
    pairs = zip(model.parameters(), before, strict=True)
    assert all(p.device.type == "cpu" and torch.equal(p, b) for p, b in pairs)


def test_base24_counts_match_paper_md():
    # shared/paper.md: one 16 x 120 x 120 patch, forward + backward: SepNet 358, U-Net 704 GFLOP.
    shape = (1, 1, 16, 120, 120)
    sepnet = count_flops(build_model("sepnet", base=24), shape) / 1e9
    unet = count_flops(build_model("unet", base=24), shape) / 1e9
    assert sepnet == pytest.approx(PAPER_NUMBERS["gflop_sepnet_b24"].value, rel=0.005)
    assert unet == pytest.approx(PAPER_NUMBERS["gflop_unet_b24"].value, rel=0.005)


def tiny_net() -> nn.Module:
    """A 4-class conv net: timing does not depend on the architecture, and this one is fast."""
    return nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.InstanceNorm3d(4), nn.Dropout3d(0.1))


def test_time_train_step_and_inference_restore_mode():
    model = tiny_net()
    model.eval()
    seconds = time_train_step(model, SHAPE, build_loss("dice"), repeats=2, warmup=1)
    assert seconds > 0 and not model.training
    assert all(p.grad is None for p in model.parameters())
    model.train()
    assert time_inference(model, SHAPE, repeats=2, warmup=0) > 0 and model.training
    assert time_train_step(model, SHAPE, repeats=1, warmup=0) > 0  # default loss: mean of the logits


@pytest.mark.parametrize("kwargs, message", [
    ({"input_shape": (1, 1, 8, 16)}, "input_shape"),
    ({"input_shape": (1, 1, 8, 16, 16), "repeats": 0}, "repeats"),
    ({"input_shape": (1, 1, 8, 16, 16), "warmup": -1}, "warmup"),
])
def test_timing_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        time_train_step(nn.Conv3d(1, 1, 1), **kwargs)


def test_cost_table_columns_and_values():
    models = {"sepnet": build_model("sepnet", base=2), "unet": build_model("unet", base=2)}
    shape = (1, 1, 8, 16, 16)
    table = cost_table(models, shape, timing=False)
    assert list(table.columns) == list(COST_COLUMNS) and list(table.index) == ["sepnet", "unet"]
    assert table.index.name == "model"
    assert table.loc["unet", "input_shape"] == "1x1x8x16x16"
    assert table.loc["sepnet", "parameters"] == count_parameters(models["sepnet"])
    assert table.loc["unet", "gflop_train"] == pytest.approx(count_flops(models["unet"], shape) / 1e9)
    assert math.isnan(table.loc["unet", "train_step_s"])
    timed = cost_table({"tiny": tiny_net()}, SHAPE, repeats=1, warmup=0)
    row = timed.loc["tiny"]
    assert row["gflop_per_s"] == pytest.approx(row["gflop_train"] / row["train_step_s"])
    with pytest.raises(ValueError, match="empty"):
        cost_table({}, shape)

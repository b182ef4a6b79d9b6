"""Device names and the one precision rule (sepnet_core.device) shared by validation, predict, evaluation."""

from __future__ import annotations

import pytest
import torch

from sepnet_core.device import native_bf16, parse_device, pick_device, resolve_amp


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_device_names_are_accepted(name):
    assert parse_device(name) == name


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", "cuda:0:1", ""])
def test_bad_device_names_are_refused_with_the_valid_ones(name):
    with pytest.raises(ValueError, match="valid devices: auto, cpu, cuda, cuda:N"):
        parse_device(name)


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            pick_device("cuda:0")
    else:
        with pytest.raises(ValueError, match="CUDA device"):
            pick_device(f"cuda:{torch.cuda.device_count()}")
        assert pick_device("cuda:0") == torch.device("cuda", 0)


def test_amp_rule():
    cpu_native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert native_bf16("cpu") == cpu_native
    assert resolve_amp(None, "cpu") == cpu_native  # the default follows the hardware
    assert resolve_amp(True, "cpu") is True and resolve_amp(False, "cpu") is False  # explicit wins
    assert resolve_amp(True, "mps") is False and resolve_amp(None, "mps") is False  # MPS: float32
    if torch.cuda.is_available():
        assert resolve_amp(None, "cuda") == torch.cuda.is_bf16_supported()
    with pytest.raises(ValueError, match="amp must be"):
        resolve_amp("yes", "cpu")  # type: ignore[arg-type]

"""Checkpoints: self-describing round trip, atomic writes, and refusal of unsafe, foreign or newer files."""

from __future__ import annotations

import builtins
import dataclasses
import os
import random

import numpy as np
import pytest
import torch

from sepnet_core import __version__
from sepnet_core.errors import CheckpointError
from sepnet_core.intensity import get_intensity
from sepnet_core.models import ModelConfig
from sepnet_core.training import load_checkpoint, load_model, preset, save_checkpoint
from sepnet_core.training.checkpoint import FORMAT_VERSION
from sepnet_core.training.seeding import rng_state, set_rng_state


@pytest.fixture
def config():
    return dataclasses.replace(preset("smoke"), intensity="slf2",
                               data=dataclasses.replace(preset("smoke").data, crop_yx=(48, 40)))


@pytest.fixture
def model(config):
    torch.manual_seed(0)
    return config.model.build()


def test_round_trip_describes_itself(tmp_path, config, model):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    path = save_checkpoint(tmp_path / "m.pt", model, config, optimizer=optimizer, scheduler=scheduler,
                           epoch=3, step=12, best_metric=0.25, val_metrics={"mean_dice": 0.25})
    ckpt = load_checkpoint(path)
    assert ckpt["format_version"] == FORMAT_VERSION and ckpt["package_version"] == __version__
    assert ckpt["organs"][0] == [1, "brain_stem"] and len(ckpt["organs"]) == 22
    assert ckpt["train_config"] == config.to_dict() and ckpt["scheduler_state"]["step_size"] == 2

    loaded = load_model(path)
    assert loaded.model_config == config.model
    assert loaded.intensity == get_intensity("slf2")
    assert loaded.crop_yx == (48, 40)
    assert (loaded.meta["epoch"], loaded.meta["step"], loaded.meta["best_metric"]) == (3, 12, 0.25)
    assert not loaded.model.training
    reference = model.state_dict()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, reference[key]), key


def test_architecture_comes_from_the_checkpoint_not_the_defaults(tmp_path, config):
    wide = dataclasses.replace(config, model=ModelConfig(base=3, direction="coronal"))
    path = save_checkpoint(tmp_path / "m.pt", wide.model.build(), wide)
    loaded = load_model(path)
    assert loaded.model_config.base == 3 and loaded.model_config.direction == "coronal"


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path, config, model, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pt", model, config, step=1)
    before = path.read_bytes()

    def broken_save(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, config, step=2)
    assert path.read_bytes() == before  # the old checkpoint survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


class _Payload:
    """Unpickling this object runs ``exec``, which would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "model_state": {}, "x": _Payload(str(marker))}, path)
    for loader in (load_checkpoint, load_model):
        with pytest.raises(CheckpointError) as info:
            loader(path)
        message = str(info.value)
        assert str(path) in message and "refused" in message and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: {**c, "format_version": FORMAT_VERSION + 1}, "newer"),
        (lambda c: {k: v for k, v in c.items() if k != "format_version"}, "not a SepNet-Book checkpoint"),
        (lambda c: {k: v for k, v in c.items() if k != "intensity"}, "lacks key"),
        (lambda c: {**c, "organs": c["organs"][:-1]}, "organ table"),
        (lambda c: c["model_state"], "not a SepNet-Book checkpoint"),  # a bare state dict
    ],
)
def test_foreign_or_newer_checkpoints_are_refused(tmp_path, config, model, change, match):
    good = load_checkpoint(save_checkpoint(tmp_path / "good.pt", model, config))
    path = tmp_path / "bad.pt"
    torch.save(change(good), path)
    with pytest.raises(CheckpointError, match=match) as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_weights_of_another_model_are_refused(tmp_path, config):
    unet = ModelConfig(name="unet", base=2).build()
    path = save_checkpoint(tmp_path / "m.pt", unet, config)  # config says SepNet, weights are a U-Net
    with pytest.raises(CheckpointError, match="do not match the stored model config") as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_and_missing_files(tmp_path, config, model):
    path = save_checkpoint(tmp_path / "m.pt", model, config)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")


def test_random_states_survive_a_weights_only_checkpoint(tmp_path, config, model):
    generator = np.random.default_rng(123)
    random.seed(5), np.random.seed(6), torch.manual_seed(7)
    state = rng_state(generator)
    expected = (random.random(), np.random.random(), torch.rand(1).item(), generator.random())
    path = save_checkpoint(tmp_path / "m.pt", model, config, rng_state=state)
    restored = np.random.default_rng(0)
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    set_rng_state(load_checkpoint(path)["rng_state"], restored)
    assert (random.random(), np.random.random(), torch.rand(1).item(), restored.random()) == expected


def test_checkpoint_contains_no_pickled_objects(tmp_path, config, model):
    # weights_only=True is exactly what load_checkpoint uses; this guards save_checkpoint's content.
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.zeros(1, 1, 8, 16, 16)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "m.pt", model, config, optimizer=optimizer,
                           rng_state={"ranks": [rng_state(np.random.default_rng(1))]})
    assert os.path.getsize(path) > 0
    assert torch.load(path, weights_only=True)["optimizer_state"]["state"]

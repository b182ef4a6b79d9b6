"""Training: config and presets, overrides, the run folder, exact resume (also after kill -9), the CLI."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sepnet_core import cli
from sepnet_core.data.io import Geometry, write_image
from sepnet_core.errors import SepNetError
from sepnet_core.models import ModelConfig
from sepnet_core.training import (
    LOG_COLUMNS,
    DataConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    fit,
    load_checkpoint,
    load_model,
    preset,
)
from sepnet_core.training.config import CPU_TRAIN_STEPS, validation_epochs
from sepnet_core.training.distributed import pick_device

SHAPE = (16, 32, 32)  # (z, y, x) voxels of the synthetic cases: 3 validation windows of 8 x 32 x 32
ORGANS = (  # label, (dy, dx) from the body centre, half size (voxels), HU
    (1, (0, 0), 4, 30), (2, (-6, 7), 3, 10), (3, (-6, -7), 3, 10), (20, (8, 0), 2, 45), (4, (-9, 7), 1, 90),
)


def write_dataset(root: Path, n_train: int = 2, n_valid: int = 1, seed: int = 0) -> Path:
    """Tiny StructSeg-layout dataset: a body ellipse with a few box-shaped organs of distinct HU."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(SHAPE)
    for split, count in (("train", n_train), ("valid", n_valid)):
        for i in range(count):
            folder = root / split / f"case_{i}"
            folder.mkdir(parents=True)
            image = np.full(SHAPE, -1000.0, np.float32)
            label = np.zeros(SHAPE, np.uint8)
            cy, cx = SHAPE[1] // 2 + rng.integers(-2, 3), SHAPE[2] // 2 + rng.integers(-2, 3)
            image[((y - cy) / 13.0) ** 2 + ((x - cx) / 13.0) ** 2 < 1] = 40
            for lab, (dy, dx), r, hu in ORGANS:
                box = (abs(y - cy - dy) <= r) & (abs(x - cx - dx) <= r) & (z >= 2) & (z < SHAPE[0] - 2)
                image[box], label[box] = hu, lab
            image += rng.normal(0, 5, SHAPE).astype(np.float32)
            geometry = Geometry(shape=SHAPE, spacing_mm=(3.0, 2.0, 2.0))
            write_image(folder / "data.nii.gz", image.round().astype(np.int16), geometry)
            write_image(folder / "label.nii.gz", label, geometry)
    return root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"))


def smoke(data_root: Path, **changes) -> TrainConfig:
    return dataclasses.replace(preset("smoke", data_root=str(data_root)), **changes)


def read_log(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def assert_same_weights(path_a: Path, path_b: Path) -> None:
    a, b = load_checkpoint(path_a), load_checkpoint(path_b)
    assert a["step"] == b["step"]
    assert a["model_state"].keys() == b["model_state"].keys()
    for key, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][key]), key


@pytest.fixture(scope="module")
def reference_run(data_root, tmp_path_factory):
    """An uninterrupted 3-epoch smoke run (organ sampling and flips on, to exercise every RNG)."""
    config = smoke(data_root, epochs=3, data=DataConfig(data_root=str(data_root), crop_yx=None,
                                                         sampling="organ", augment_flip=True))
    out = tmp_path_factory.mktemp("reference") / "run"
    fit(config, out)
    return config, out


# ---------------------------------------------------------------------------------------- config
def test_paper_preset_is_the_reference_setting():
    cfg = preset("paper")
    assert cfg == TrainConfig(validate_every=10)  # the dataclass defaults but for validation (ours)
    assert cfg.model == ModelConfig(name="sepnet", base=24)
    assert (cfg.intensity, cfg.loss, cfg.alpha) == ("slf1", "ath", 1.0)
    assert cfg.optim == OptimConfig(lr=1e-3, weight_decay=1e-8, step_every_epochs=10, gamma=0.9)
    assert (cfg.epochs, cfg.iterations_per_epoch, cfg.batch_size) == (400, 100, 4)
    assert cfg.patch_size == (16, 120, 120) and cfg.data.crop_yx == (256, 256)
    assert (cfg.data.sampling, cfg.data.augment_flip) == ("uniform", False)
    assert (cfg.val_mode, cfg.select_by) == ("reference", "mean_dice")
    assert cfg.optim.schedule == "step" and cfg.dice_weighting == "reference"
    # every 10 epochs (ours; the reference validates every epoch), the last epoch included
    assert validation_epochs(cfg) == list(range(10, 401, 10))


def test_cpu_preset_learns_with_ath_plus_background_a_poly_schedule_and_a_learning_curve():
    cfg = preset("cpu")
    assert (cfg.loss, cfg.dice_weighting, cfg.loss_background) == ("ath", "intended", True)
    assert cfg.optim.schedule == "poly" and cfg.optim.poly_power == 2.0 and cfg.optim.warmup_steps > 0
    assert cfg.data.augment_flip and cfg.prior_scale_max == 0.5  # mirroring; the prior correction scan
    assert cfg.epochs * cfg.iterations_per_epoch == CPU_TRAIN_STEPS
    assert len(validation_epochs(cfg)) >= 8
    longer = dataclasses.replace(cfg, epochs=4 * cfg.epochs)  # the validation count does not depend on length
    assert len(validation_epochs(longer)) == len(validation_epochs(cfg))


@pytest.mark.parametrize(
    ("epochs", "every", "points", "expected"),
    [(10, 1, None, list(range(1, 11))), (10, 3, None, [3, 6, 9, 10]), (10, 1, 4, [2, 5, 8, 10]),
     (3, 1, 12, [1, 2, 3]), (36, 1, 12, list(range(3, 37, 3)))],
)
def test_validation_epochs(epochs, every, points, expected):
    cfg = preset("smoke", epochs=epochs, validate_every=every, val_points=points)
    assert validation_epochs(cfg) == expected


@pytest.mark.parametrize(("item", "match"), [
    ("val_points=0", "val_points"), ("val_overlap=1", "val_overlap"), ("amp=fp8", "auto, bf16, off"),
    ("optim.schedule=linear", "poly"), ("optim.warmup_steps=-1", "warmup_steps"),
    ("dice_weighting=mean", "reference, intended"),
])
def test_new_settings_are_validated(item, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(preset("smoke"), [item])


def test_old_boolean_amp_reads_as_a_mode():
    data = preset("smoke").to_dict()
    assert TrainConfig.from_dict({**data, "amp": True}).amp == "auto"
    assert TrainConfig.from_dict({**data, "amp": False}).amp == "off"
    assert apply_overrides(preset("smoke"), ["amp=false"]).amp == "off"
    assert apply_overrides(preset("smoke", amp="off"), ["amp=true"]).amp == "auto"


def test_removed_num_workers_key_reads_only_as_its_old_no_op_default():
    data = preset("smoke").to_dict()
    assert TrainConfig.from_dict({**data, "num_workers": 0}) == preset("smoke")
    with pytest.raises(ValueError, match="num_workers=2: the setting was removed"):
        TrainConfig.from_dict({**data, "num_workers": 2})
    with pytest.raises(ValueError, match="unknown config key"):
        apply_overrides(preset("smoke"), ["num_workers=0"])


@pytest.mark.parametrize("name", ["paper", "cpu", "smoke"])
def test_presets_round_trip_through_json(name):
    cfg = preset(name, seed=4)
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert cfg.config_hash() == TrainConfig.from_dict(cfg.to_dict()).config_hash()
    assert cfg.config_hash() != preset(name, seed=5).config_hash()


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="paper, cpu, smoke"):
        preset("gpu")


@pytest.mark.parametrize(
    ("item", "get", "expected"),
    [
        ("optim.lr=5e-4", lambda c: c.optim.lr, 5e-4),
        ("epochs=7", lambda c: c.epochs, 7),
        ("model.base=6", lambda c: c.model.base, 6),
        ("model.direction=coronal", lambda c: c.model.direction, "coronal"),
        ("model.name=unet", lambda c: (c.model.name, c.model.direction), ("unet", None)),
        ("patch_size=16x64x64", lambda c: c.patch_size, (16, 64, 64)),
        ("patch_size=[8, 16, 24]", lambda c: c.patch_size, (8, 16, 24)),
        ("data.crop_yx=none", lambda c: c.data.crop_yx, None),
        ("data.crop_yx=128,96", lambda c: c.data.crop_yx, (128, 96)),
        ("data.augment_flip=true", lambda c: c.data.augment_flip, True),
        ("amp=off", lambda c: c.amp, "off"),
        ("amp=bf16", lambda c: c.amp, "bf16"),
        ("optim.schedule=cosine", lambda c: c.optim.schedule, "cosine"),
        ("val_points=9", lambda c: c.val_points, 9),
        ("val_overlap=0.25", lambda c: c.val_overlap, 0.25),
        ("dice_weighting=intended", lambda c: c.dice_weighting, "intended"),
        ("data.data_root=/x/y", lambda c: c.data.data_root, "/x/y"),
    ],
)
def test_overrides_are_parsed_to_the_field_type(item, get, expected):
    assert get(apply_overrides(preset("smoke"), [item])) == expected


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("epochs", "key=value"),
        ("epoch=3", "unknown config key 'epoch'"),
        ("optim=3", "is a section"),
        ("optim.lr.x=3", "not a section"),
        ("epochs=three", "cannot read"),
        ("patch_size=8x30x32", "divisible by 8"),
        ("device=tpu", "auto, cpu, cuda, mps"),
        ("loss=focal", "dice, explog, ath"),
        ("intensity=slf9", "slf1"),
        ("data.sampling=random", "uniform, organ"),
        ("batch_size=0", "batch_size"),
    ],
)
def test_bad_overrides_name_the_rule(item, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(preset("smoke"), [item])


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert pick_device("auto").type in ("cpu", "mps")
        with pytest.raises(ValueError, match="no CUDA device"):
            pick_device("cuda")


# ------------------------------------------------------------------------------------- run folder
def test_fit_writes_a_complete_run_folder(reference_run):
    config, out = reference_run
    assert {p.name for p in out.iterdir()} == {"config.json", "log.csv", "last.pt", "best.pt", "summary.json"}
    assert TrainConfig.from_dict(json.loads((out / "config.json").read_text())) == config
    rows = read_log(out / "log.csv")
    assert list(rows[0]) == list(LOG_COLUMNS)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and [int(r["step"]) for r in rows] == [2, 4, 6]
    assert all(0.0 <= float(r["val_mean_dice"]) <= 1.0 and float(r["train_loss"]) > 0 for r in rows)
    best = max(rows, key=lambda r: float(r["val_mean_dice"]))
    loaded = load_model(out / "best.pt")
    assert loaded.meta["epoch"] == int(best["epoch"])
    assert loaded.meta["best_metric"] == pytest.approx(float(best["val_mean_dice"]))
    assert load_checkpoint(out / "last.pt")["step"] == 6


def test_summary_records_seed_versions_config_hash_and_best_epoch(reference_run):
    config, out = reference_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config_hash"] == config.config_hash() and summary["seed"] == config.seed
    assert summary["versions"]["torch"] == torch.__version__
    assert summary["versions"]["numpy"] == np.__version__
    assert set(summary["versions"]) == {"sepnet_core", "python", "torch", "numpy", "SimpleITK"}
    assert (summary["device"], summary["deterministic"], summary["world_size"]) == ("cpu", True, 1)
    assert not torch.are_deterministic_algorithms_enabled()  # fit restored the global setting
    rows = read_log(out / "log.csv")
    best = max(rows, key=lambda r: float(r["val_mean_dice"]))
    assert summary["best"]["epoch"] == int(best["epoch"])
    assert summary["best"]["metric"] == pytest.approx(float(best["val_mean_dice"]))
    assert (summary["epochs"], summary["steps"], summary["resumed_from_epoch"]) == (3, 6, None)
    assert summary["checkpoints"]["last.pt"] == hashlib.sha256((out / "last.pt").read_bytes()).hexdigest()
    assert 0 < summary["wall_time_s"] < 600


def test_existing_run_is_refused_unless_forced(data_root, tmp_path):
    out = tmp_path / "run"
    config = smoke(data_root, epochs=1, iterations_per_epoch=1)
    fit(config, out)
    with pytest.raises(SepNetError, match="already holds a run"):
        fit(config, out)
    first = load_checkpoint(out / "last.pt")["model_state"]
    fit(dataclasses.replace(config, seed=1), out, force=True)
    assert len(read_log(out / "log.csv")) == 1
    second = load_checkpoint(out / "last.pt")["model_state"]
    assert any(not torch.equal(first[k], second[k]) for k in first)


def test_resume_with_another_config_is_refused(reference_run, tmp_path):
    config, out = reference_run
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "config.json").write_text((out / "config.json").read_text())
    with pytest.raises(SepNetError, match="optim.lr"):
        fit(dataclasses.replace(config, optim=OptimConfig(lr=0.1)), copy, resume=True)


# ------------------------------------------------------------------------------------ exact resume
class Stop(Exception):
    pass


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(reference_run, tmp_path):
    config, reference = reference_run
    out = tmp_path / "run"

    def stop_after_first_epoch(event):
        if event["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        fit(config, out, callback=stop_after_first_epoch)
    assert len(read_log(out / "log.csv")) == 1
    assert not (out / "summary.json").exists()  # only a finished run has a summary
    fit(config, out, resume=True)
    assert_same_weights(out / "last.pt", reference / "last.pt")
    ours, theirs = read_log(out / "log.csv"), read_log(reference / "log.csv")
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in ours] == \
           [{k: v for k, v in r.items() if k != "seconds"} for r in theirs]


def test_resume_can_extend_a_finished_run(reference_run, tmp_path):
    config, reference = reference_run
    out = tmp_path / "run"
    fit(dataclasses.replace(config, epochs=2), out)
    assert json.loads((out / "summary.json").read_text())["epochs"] == 2
    with open(out / "log.csv", "a") as handle:  # a row cut short by a kill during its append
        handle.write("3,6,0.001,1.5,0.1")
    fit(config, out, resume=True)  # epochs 2 -> 3
    assert [r["step"] for r in read_log(out / "log.csv")] == ["2", "4", "6"]
    assert_same_weights(out / "last.pt", reference / "last.pt")
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["epochs"], summary["resumed_from_epoch"]) == (3, 2)


def _train_command(data_root: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sepnet_core.cli", "train", "--preset", "smoke",
            "--data-root", str(data_root), "--out", str(out), "--set", "epochs=3",
            "--set", "data.sampling=organ", "--set", "data.augment_flip=true", *extra]


def _kill_after_rows(command: list[str], log: Path, rows: int, timeout: float = 60.0) -> None:
    """Start ``command`` and SIGKILL it as soon as ``log`` has ``rows`` data rows (``rows=0``: as soon
    as the run folder has its config.json, before the first checkpoint)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    ready = (lambda: (log.parent / "config.json").exists()) if rows == 0 else \
        (lambda: log.exists() and len(log.read_text().splitlines()) - 1 >= rows)
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if ready():
                break
            time.sleep(0.02)
        assert process.poll() is None, "training ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_run(data_root, reference_run, tmp_path):
    _, reference = reference_run
    out = tmp_path / "run"
    # Kill before the first checkpoint, resume; kill during epoch 2 (after epoch 1's checkpoint), resume;
    # kill again after epoch 2, resume to the end.
    _kill_after_rows(_train_command(data_root, out), out / "log.csv", rows=0)
    _kill_after_rows(_train_command(data_root, out, "--resume"), out / "log.csv", rows=1)
    _kill_after_rows(_train_command(data_root, out, "--resume"), out / "log.csv", rows=2)
    assert load_checkpoint(out / "last.pt")["epoch"] in (2, 3)
    result = subprocess.run(_train_command(data_root, out, "--resume"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "best checkpoint" in result.stdout
    assert_same_weights(out / "last.pt", reference / "last.pt")
    assert [r["step"] for r in read_log(out / "log.csv")] == ["2", "4", "6"]
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


# ------------------------------------------------------------------------------------------- CLI
def test_cli_help_states_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    for needle in ("--preset", "default: cpu", "--data-root", "--set", "--resume", "--force", "voxels"):
        assert needle in text


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--preset", "smoke"], "--data-root"),
        (["--preset", "smoke", "--data-root", "DATA", "--set", "optim.lr=fast"], "cannot read"),
        (["--preset", "smoke", "--data-root", "NOWHERE"], "does not exist"),
    ],
)
def test_cli_errors_are_one_line(args, match, tmp_path, data_root, capsys):
    paths = {"DATA": str(data_root), "NOWHERE": str(tmp_path / "nowhere")}
    args = [paths.get(a, a) for a in args]
    assert cli.main(["train", *args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1


def test_loss_background_reaches_the_loss_and_is_validated():
    from sepnet_core.training.loop import loss_options

    assert loss_options(preset("smoke")) == {"alpha": 1.0, "background": False, "dice_weighting": "reference"}
    config = apply_overrides(preset("smoke"),
                             ["loss=explog", "loss_background=true", "dice_weighting=intended"])
    assert loss_options(config) == {"background": True, "dice_weighting": "intended"}
    assert loss_options(apply_overrides(preset("smoke"), ["loss=dice"])) == {}
    assert TrainConfig.from_dict(config.to_dict()).loss_background is True
    # the Dice loss counts every class anyway: the flag (set by the cpu preset for every run) is ignored
    assert loss_options(apply_overrides(preset("smoke"), ["loss=dice", "loss_background=true"])) == {}
    with pytest.raises(ValueError, match="loss_background"):
        apply_overrides(preset("smoke"), ["loss_background=maybe"])
    cpu = preset("cpu")
    assert (cpu.loss, cpu.loss_background, cpu.dice_weighting) == ("ath", True, "intended")
    assert (preset("paper").loss_background, preset("paper").dice_weighting) == (False, "reference")


# ------------------------------------------------------------------- schedule, precision, curves
def test_poly_schedule_resume_equals_an_uninterrupted_run(data_root, tmp_path):
    """Warm-up + poly decay stepped per optimiser step: the logged rates follow the formula, and a run
    stopped after epoch 2 and resumed ends with the weights and log of an uninterrupted one."""
    from sepnet_core.training.schedule import lr_factor

    config = apply_overrides(smoke(data_root, epochs=4), ["optim.schedule=poly", "optim.warmup_steps=3",
                                                          "optim.lr=0.002"])
    fit(config, tmp_path / "whole")
    rows = read_log(tmp_path / "whole" / "log.csv")
    total = config.epochs * config.iterations_per_epoch
    expected = [0.002 * lr_factor("poly", 2 * e, total, 3, 0.9) for e in range(4)]  # lr at each epoch start
    assert [float(r["lr"]) for r in rows] == pytest.approx(expected, rel=1e-12)

    def stop_after_second_epoch(event):
        if event["epoch"] == 2:
            raise Stop

    out = tmp_path / "resumed"
    with pytest.raises(Stop):
        fit(config, out, callback=stop_after_second_epoch)
    fit(config, out, resume=True)
    assert_same_weights(out / "last.pt", tmp_path / "whole" / "last.pt")
    assert [r["lr"] for r in read_log(out / "log.csv")] == [r["lr"] for r in rows]
    assert load_checkpoint(out / "last.pt")["scheduler_state"]["last_epoch"] == total


def test_validation_points_and_overlap_reach_the_log(data_root, tmp_path, monkeypatch):
    from sepnet_core.training import loop

    seen = []
    real = loop.validate

    def spy(*args, **kwargs):
        seen.append(kwargs["overlap"])
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "validate", spy)
    config = smoke(data_root, epochs=5, val_points=2, val_overlap=0.25)
    fit(config, tmp_path / "run")
    rows = read_log(tmp_path / "run" / "log.csv")
    validated = [int(r["epoch"]) for r in rows if r["val_mean_dice"] not in ("", "nan")]
    assert validated == validation_epochs(config) == [2, 5]
    assert seen == [0.25, 0.25]
    assert all(float(r["seconds"]) > 0 and r["train_loss"] for r in rows)


@pytest.mark.parametrize("amp", ["off", "auto"])
def test_cpu_training_precision_paths(data_root, tmp_path, monkeypatch, amp):
    """amp=off and amp=auto train float32 on CPU (bf16 CPU training is refused: next test); the loss is
    float32 in every case."""
    from sepnet_core.training import loop

    outputs, inputs = [], []
    real_build, real_loss = ModelConfig.build, loop.build_loss

    def build(self):
        model = real_build(self)
        model.register_forward_hook(lambda m, args, out: outputs.append(out.dtype) if m.training else None)
        return model

    def build_loss(*args, **kwargs):
        loss = real_loss(*args, **kwargs)
        loss.register_forward_pre_hook(lambda module, args: inputs.append(args[0].dtype))
        return loss

    monkeypatch.setattr(ModelConfig, "build", build)
    monkeypatch.setattr(loop, "build_loss", build_loss)
    fit(smoke(data_root, epochs=1, amp=amp), tmp_path / "run")
    assert set(outputs) == {torch.float32} and len(outputs) == 2
    assert set(inputs) == {torch.float32}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["amp"] is False
    assert math.isfinite(float(read_log(tmp_path / "run" / "log.csv")[0]["train_loss"]))


def test_bf16_training_on_a_cpu_is_refused_before_anything_is_written(data_root, tmp_path):
    with pytest.raises(ValueError, match="amp=bf16: bf16 training on a CPU is not offered"):
        fit(smoke(data_root, epochs=1, amp="bf16"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_auto_precision_follows_the_device_rule(monkeypatch):
    from sepnet_core import device
    from sepnet_core.training import precision

    for native in (True, False):
        monkeypatch.setattr(device, "native_bf16", lambda dev, native=native: native)
        assert precision.use_bf16("auto", "cpu") is False  # CPUs train float32 unless told "bf16"
        with pytest.raises(ValueError, match="not offered"):
            precision.use_bf16("bf16", "cpu")
        assert precision.use_bf16("off", "cpu") is False
        assert precision.use_bf16("auto", "cuda:0") is native
        assert device.resolve_amp(precision.validation_amp("auto"), "cpu") is native  # validation
    assert precision.use_bf16("bf16", "mps") is False
    assert [precision.validation_amp(m) for m in ("auto", "bf16", "off")] == [None, True, False]


@pytest.mark.parametrize("name", ["config", "schedule", "precision"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"sepnet_core.training.{name}"), verbose=False)
    assert result.failed == 0 and result.attempted > 0

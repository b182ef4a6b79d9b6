"""Training configuration: frozen dataclasses, the three presets and ``key=value`` overrides.

One :class:`TrainConfig` describes a whole run (data, model, intensity transform, loss, optimiser,
schedule, patches, seed, device). It is saved as ``config.json`` in the run folder and inside every
checkpoint, so a run can be resumed, and a checkpoint understood, without today's defaults.

The dataclass defaults are the paper's reference settings (``shared/paper.md``, "Training"), i.e.
``preset("paper") == TrainConfig()``. The other presets override a few values:

* ``cpu`` (ours): the phantom's ``cpu`` profile (128 x 128 in-plane at about 2 mm, 55-70 slices of
  3 mm): SepNet b=8, 16 x 64 x 64 patches, batch 2, organ-aware sampling with left/right mirroring, no
  in-plane crop, Adam lr 1e-2 with warm-up and poly decay of power 2 (our deviation from the paper's
  StepLR, so that a run converges in its budget), :data:`CPU_TRAIN_STEPS` steps (the one length
  setting) validated at 12 evenly spaced points, then a prior correction of the classifier bias chosen
  on the validation cases (:mod:`sepnet_core.training.prior`). The loss is the paper's ATH with the
  background class counted and the intended Dice weighting (ours: on the phantom the paper's loss as
  the reference code computes it learns the small organs far more slowly; measured, see the ``cpu``
  entry of the presets below). The paper's loss itself is trained as a run of the book's loss ablation.
* ``smoke``: seconds, for tests: b=2, 8 x 32 x 32 patches, 2 epochs x 2 iterations.

Example:
    >>> cfg = preset("smoke", seed=3)
    >>> cfg = apply_overrides(cfg, ["optim.lr=5e-4", "patch_size=8x32x32", "model.base=4"])
    >>> (cfg.optim.lr, cfg.patch_size, cfg.model.base, cfg.seed)
    (0.0005, (8, 32, 32), 4, 3)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sepnet_core.intensity import PRESETS as INTENSITY_PRESETS
from sepnet_core.losses import DICE_WEIGHTINGS, LOSS_NAMES
from sepnet_core.models import ModelConfig
from sepnet_core.training.precision import normalise_amp
from sepnet_core.training.schedule import SCHEDULES

__all__ = [
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "PRESETS",
    "DEVICES",
    "SAMPLING_MODES",
    "VAL_MODES",
    "SELECT_BY",
    "CPU_TRAIN_STEPS",
    "validation_epochs",
    "preset",
    "apply_overrides",
]

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
"""Valid ``TrainConfig.device`` values; "auto" picks cuda, then mps, then cpu."""
SAMPLING_MODES: tuple[str, ...] = ("uniform", "organ")
"""Patch sampling: "uniform" random crops (the reference) or "organ"-aware (small organs over-sampled)."""
VAL_MODES: tuple[str, ...] = ("gaussian", "reference")
"""Whole-volume validation inference modes (see :func:`sepnet_core.inference.sliding.predict_volume`)."""
SELECT_BY: tuple[str, ...] = ("mean_dice", "weighted_dice")
"""Validation score that picks ``best.pt``: mean foreground Dice (the reference) or StructSeg-weighted."""


def _choice(name: str, value: object, valid: Iterable[str]) -> None:
    valid = tuple(valid)
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; valid values: {', '.join(valid)}")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _positive_float(name: str, value: object, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        rule = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {rule}, got {value!r}")


def _int_tuple(name: str, value: object, length: int) -> tuple[int, ...]:
    try:
        items = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be {length} positive integers, got {value!r}") from None
    if len(items) != length or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items):
        raise ValueError(f"{name} must be {length} positive integers, got {value!r}")
    return items


@dataclass(frozen=True)
class DataConfig:
    """Where the cases are and how patches are drawn from them.

    Attributes:
        data_root: Folder holding ``<split>/<case>/data.nii.gz`` and ``label.nii.gz``.
        train_split: Sub-folder of training cases.
        valid_split: Sub-folder of validation cases (whole-volume inference each epoch); a missing or
            empty folder means no validation (``best.pt`` is then the latest epoch).
        crop_yx: In-plane centre crop/pad (y, x) in voxels applied to every case (paper: 256 x 256),
            or ``None`` to keep the full slices.
        sampling: "uniform" random crops (reference) or "organ" (see ``organ_fraction``).
        organ_fraction: With ``sampling="organ"``, the probability that a patch is centred on a voxel
            of a randomly chosen organ (organs weighted by the inverse of their voxel counts).
        augment_flip: Mirror patches left/right with probability 0.5, swapping the labels of each
            organ pair (:func:`sepnet_core.data.sampling.flip_lr`).
    """

    data_root: str = ""
    train_split: str = "train"
    valid_split: str = "valid"
    crop_yx: tuple[int, int] | None = (256, 256)
    sampling: str = "uniform"
    organ_fraction: float = 0.5
    augment_flip: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.data_root, str):
            object.__setattr__(self, "data_root", str(self.data_root))
        if self.crop_yx is not None:
            object.__setattr__(self, "crop_yx", _int_tuple("data.crop_yx", self.crop_yx, 2))
        _choice("data.sampling", self.sampling, SAMPLING_MODES)
        if not isinstance(self.organ_fraction, (int, float)) or not 0.0 <= self.organ_fraction <= 1.0:
            raise ValueError(f"data.organ_fraction must be in [0, 1], got {self.organ_fraction!r}")
        if not isinstance(self.augment_flip, bool):
            raise ValueError(f"data.augment_flip must be true or false, got {self.augment_flip!r}")


@dataclass(frozen=True)
class OptimConfig:
    """Adam and its learning-rate schedule (:mod:`sepnet_core.training.schedule`).

    Attributes:
        lr: Initial (peak) learning rate.
        weight_decay: Adam (L2) weight decay.
        schedule: "step" (the paper's StepLR, per epoch), "poly" (warm-up, then ``lr (1 - t)^poly_power``
            per optimiser step, as nnU-Net) or "cosine" (warm-up, then cosine decay to 0).
        step_every_epochs: "step" only: StepLR period in epochs.
        gamma: "step" only: StepLR factor applied every ``step_every_epochs`` epochs.
        warmup_steps: "poly"/"cosine" only: linear warm-up length in optimiser steps (0: none).
        poly_power: "poly" only: exponent of the decay (nnU-Net: 0.9).
    """

    lr: float = 1e-3
    weight_decay: float = 1e-8
    schedule: str = "step"
    step_every_epochs: int = 10
    gamma: float = 0.9
    warmup_steps: int = 0
    poly_power: float = 0.9

    def __post_init__(self) -> None:
        _positive_float("optim.lr", self.lr)
        _positive_float("optim.weight_decay", self.weight_decay, allow_zero=True)
        _choice("optim.schedule", self.schedule, SCHEDULES)
        _positive_int("optim.step_every_epochs", self.step_every_epochs)
        _positive_float("optim.gamma", self.gamma)
        warmup = self.warmup_steps
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"optim.warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        _positive_float("optim.poly_power", self.poly_power)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; the defaults are the paper's reference settings.

    Attributes:
        model: The network (:class:`~sepnet_core.models.ModelConfig`), paper: SepNet b=24.
        intensity: Intensity preset name (``sepnet_core.intensity.PRESETS``), paper: "slf1".
        loss: Loss name (``sepnet_core.losses.LOSS_NAMES``), paper: "ath".
        alpha: ATH temperature (used by "ath" only); the ensemble uses 1.0 and 0.5.
        loss_background: "explog" and "ath": also count the background class in the Dice term
            and background voxels in the cross term (ours; the paper and the reference code count
            foreground only, which is the default False). See ``sepnet_core.losses``. The "dice" loss
            always counts every class, so it ignores this setting (the ``cpu`` preset sets it True
            for every run).
        dice_weighting: "explog" and "ath" only: "reference" (the reference code's effective Dice
            term, which produced the paper's numbers: smoothing = class count, sum over classes) or
            "intended" (smoothing 1, mean over classes). See ``sepnet_core.losses``.
        data: :class:`DataConfig`.
        optim: :class:`OptimConfig`.
        patch_size: Training patch (d, h, w) = (z, y, x) in voxels, each divisible by 8.
        batch_size: Patches per optimiser step in all: under ``torchrun`` each of the N processes takes
            ``batch_size / N`` of them (an error unless N divides it), so the global batch is the same
            on any number of GPUs.
        epochs: Number of epochs.
        iterations_per_epoch: Optimiser steps per epoch.
        seed: Seeds python, numpy and torch; each process's sampler uses ``(seed, rank)``.
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda" or "mps".
        amp: Precision (:mod:`sepnet_core.training.precision`): "auto" (training bf16 on CUDA GPUs
            with bf16, float32 on CPUs; validation bf16 where the device computes it natively), "bf16"
            (bf16 on CUDA; refused for training on a CPU, where it was measured no faster and unstable)
            or "off" (float32). ``true``/``false`` read as "auto"/"off".
        validate_every: Validate every this many epochs (the last epoch always validates); ignored
            when ``val_points`` is set.
        val_points: Validate at this many evenly spaced epochs (the last one included), whatever
            the run's length, or ``None`` to use ``validate_every`` (:func:`validation_epochs`).
        val_overlap: "gaussian" validation only: fraction of a window shared with its neighbour
            (``0 <= val_overlap < 1``; fewer windows when smaller), ``None`` for the inference
            default (0.5).
        val_mode: Validation inference, "gaussian" (windows of ``patch_size``, half overlap) or
            "reference" (16-slice slabs of the whole in-plane crop, stride 2 slices).
        select_by: Validation score that chooses ``best.pt``: "mean_dice" (reference) or
            "weighted_dice".
        compile: Train through ``torch.compile`` (ours, default off: minutes of compilation; the
            benchmarks measure what it gains). Validation and checkpoints use the plain module.
        dist_timeout_s: Under ``torchrun``, seconds a collective may wait before the process group
            fails (default 2 h: longer than rank 0's longest validation or checkpoint write).
        prior_scale_max: Post-hoc prior correction (ours, :mod:`sepnet_core.training.prior`): after
            training, ``best.pt``'s classifier bias gets ``k * log f_c`` (``f_c``: class c's voxel
            frequency in the training labels), with ``k`` scanned over ``0, prior_scale_step, ...,
            prior_scale_max`` on the validation cases and the one of least foreground-volume error
            kept. 0 (the default, the paper's) turns it off.
        prior_scale_step: Spacing of that scan (> 0).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    intensity: str = "slf1"
    loss: str = "ath"
    alpha: float = 1.0
    loss_background: bool = False
    dice_weighting: str = "reference"
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    patch_size: tuple[int, int, int] = (16, 120, 120)
    batch_size: int = 4
    epochs: int = 400
    iterations_per_epoch: int = 100
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    validate_every: int = 1
    val_points: int | None = None
    val_overlap: float | None = None
    val_mode: str = "reference"
    select_by: str = "mean_dice"
    compile: bool = False
    dist_timeout_s: int = 7200
    prior_scale_max: float = 0.0
    prior_scale_step: float = 0.025

    def __post_init__(self) -> None:
        for name, cls in (("model", ModelConfig), ("data", DataConfig), ("optim", OptimConfig)):
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"TrainConfig.{name} must be a {cls.__name__}, got {getattr(self, name)!r}")
        _choice("intensity", self.intensity, INTENSITY_PRESETS)
        _choice("loss", self.loss, LOSS_NAMES)
        _positive_float("alpha", self.alpha)
        if not isinstance(self.loss_background, bool):
            raise ValueError(f"loss_background must be true or false, got {self.loss_background!r}")
        _choice("dice_weighting", self.dice_weighting, DICE_WEIGHTINGS)
        patch = _int_tuple("patch_size", self.patch_size, 3)
        if any(p % 8 for p in patch):
            raise ValueError(f"patch_size={patch} must have every size divisible by 8 (three 2x poolings)")
        object.__setattr__(self, "patch_size", patch)
        for name in ("batch_size", "epochs", "iterations_per_epoch", "validate_every"):
            _positive_int(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        _choice("device", self.device, DEVICES)
        object.__setattr__(self, "amp", normalise_amp(self.amp))
        if self.val_points is not None:
            _positive_int("val_points", self.val_points)
        if self.val_overlap is not None:
            ok = isinstance(self.val_overlap, (int, float)) and not isinstance(self.val_overlap, bool)
            if not ok or not 0.0 <= self.val_overlap < 1.0:
                raise ValueError(f"val_overlap must be a number in [0, 1) or none, got {self.val_overlap!r}")
        _choice("val_mode", self.val_mode, VAL_MODES)
        _choice("select_by", self.select_by, SELECT_BY)
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be true or false, got {self.compile!r}")
        _positive_int("dist_timeout_s", self.dist_timeout_s)
        for name in ("prior_scale_max", "prior_scale_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.prior_scale_step <= 0:
            raise ValueError(f"prior_scale_step must be > 0, got {self.prior_scale_step!r}")

    # ------------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able nested dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        """The config as indented JSON text (what ``config.json`` holds)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; missing keys take defaults.

        Raises:
            TypeError: ``data`` (or a section) is not a mapping.
            ValueError: an unknown key (valid keys listed) or a bad value.
        """
        return _from_dict(cls, data, "")

    def config_hash(self) -> str:
        """First 12 hex digits of the SHA-256 of the canonical JSON (sorted keys): a run's fingerprint."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


_SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "optim": OptimConfig}


def _legacy_num_workers(data: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the removed ``num_workers`` key of configs written before it was removed (it never did
    anything: patches are cut from volumes held in memory and prepared by a background thread,
    :mod:`sepnet_core.training.batches`). Only its old default 0 is accepted, so a config that asked for
    worker processes is not silently run without them."""
    if data["num_workers"] != 0:
        raise ValueError(f"num_workers={data['num_workers']!r}: the setting was removed (it never had an "
                         "effect: the next batch is prepared on a background thread); delete it")
    return {k: v for k, v in data.items() if k != "num_workers"}


def _from_dict(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__}.from_dict needs a mapping, got {type(data).__name__}")
    valid = [f.name for f in dataclasses.fields(cls)]
    if cls is TrainConfig and "num_workers" in data:
        data = _legacy_num_workers(data)
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ValueError(f"unknown {prefix or 'config'} key(s) {unknown}; valid keys: {valid}")
    values = {}
    for key, value in data.items():
        if cls is TrainConfig and key in _SECTIONS:
            section = _SECTIONS[key]
            value = section.from_dict(value) if section is ModelConfig else _from_dict(section, value, key)
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return cls(**values)


def validation_epochs(config: TrainConfig) -> list[int]:
    """The epochs (1-based) after which ``config`` validates.

    With ``val_points = n``: epochs ``round(k * epochs / n)`` for ``k = 1..n`` (duplicates dropped, so
    at most ``epochs``); otherwise every ``validate_every``-th epoch. The last epoch always validates.

    Example:
        >>> validation_epochs(preset("smoke", epochs=10, val_points=4))
        [2, 5, 8, 10]
    """
    epochs = config.epochs
    if config.val_points is not None:
        chosen = {max(1, round(k * epochs / config.val_points)) for k in range(1, config.val_points + 1)}
    else:
        chosen = set(range(config.validate_every, epochs + 1, config.validate_every))
    return sorted(chosen | {epochs})


# ------------------------------------------------------------------------------------------ presets
CPU_TRAIN_STEPS = 5400
"""Length of a ``cpu`` preset run in optimiser steps (epochs of :data:`CPU_STEPS_PER_EPOCH` steps): the
one setting to change for a longer or shorter cpu chain; the schedule and the validation points follow.
Measured on the phantom (10 train / 4 valid cpu cases, one thread, two runs at once, 2026-12-07): with
mirroring, the preset's ATH reached validation mean Dice 0.620 at 1,800 steps, 0.628 at 2,700, 0.646 at
3,600 (still gaining 0.032 in its last quarter) and 0.657 at 5,400 (flat); at 1,800 steps without
mirroring 0.553-0.578. 5,400 is the shortest length measured whose curve flattens above the gate's
0.65; a run takes 2,550-2,760 s two at a time on this 2-core machine, so the book's 25 training runs
take about 9 h (:mod:`sepnet_core.pipeline.table`)."""
CPU_STEPS_PER_EPOCH = 30
"""Optimiser steps per epoch of the ``cpu`` preset (one checkpoint and log row per epoch)."""
if CPU_TRAIN_STEPS % CPU_STEPS_PER_EPOCH:  # pragma: no cover - a constant typed wrongly
    raise ValueError(f"CPU_TRAIN_STEPS={CPU_TRAIN_STEPS} must be a multiple of {CPU_STEPS_PER_EPOCH}")

_PRESET_OVERRIDES: dict[str, dict[str, Any]] = {
    # shared/paper.md, "Training and inference (code)": the dataclass defaults (StepLR x0.9 every 10
    # epochs, the reference code's Dice weighting, bf16 where the hardware has it).
    # Validation every 10 epochs (ours: the reference validates every epoch; 40 validations of a
    # 400-epoch run keep the learning curve and cost a tenth of the time).
    "paper": {"validate_every": 10},
    # The phantom's cpu profile. Ours, tuned: b=8, organ-aware patches, whole slices (no crop), Adam
    # lr 1e-2 (1e-3 learns ~3x slower) with a 5 % linear warm-up then poly decay of power 2 to 0 over the
    # run (our deviation from the paper's StepLR: a short run has to converge in its budget),
    # CPU_TRAIN_STEPS steps in epochs of 30, validated at 12 evenly spaced epochs (the learning curve);
    # architecture (dropout 0.5) as the paper. Poly power 2, not nnU-Net's 0.9: at 5,400 steps power
    # 0.9 left seed 1's curve gaining 0.027 in its last quarter, power 2 -0.001 and +0.012 on seeds 0
    # and 1 (2026-12-07).
    # Left/right mirroring (data.augment_flip): +0.04-0.07 validation mean Dice at 1,800 steps. Prior
    # correction (prior_scale_max 0.5): the class-weighted cross-entropy of ATH and exp-log makes the
    # network label uncertain voxels as organ (worst test case 1.5-1.6x the reference foreground); on a
    # 5,400-step probe k = 0.25 (chosen by least validation volume error) gave validation 0.667 and every
    # test case within 30 % (worst 1.27x), k = 0 0.657 and 8 of 20 test cases over 30 %.
    # The loss (ours): ATH alpha 1 with the background class counted and the intended Dice weighting.
    # Measured on the new phantom (10 train / 4 valid cpu cases, this preset otherwise, one thread, 2
    # runs at once, 2026-12-06): the paper's loss as the reference code computes it (reference
    # weighting, foreground only) reached validation mean Dice 0.14 after
    # 1,200 of 2,400 steps and 0.38 at 2,400, with 11 small organs at 0; reference weighting + background
    # 0.13 at 2,400; intended weighting, foreground only, 0.32 in a 1,200-step run (brain stem and temporal
    # lobes at 0.01-0.02: the background is not learnt); intended + background 0.42 in a 1,200-step run.
    # So the members and arms train with the last; the loss page trains and shows the others.
    # amp "auto": float32 training on CPUs (bf16 autocast measured 0.93x the fp32 step time at 1 thread
    # and 1.07x at 2 on this 2-core avx512_bf16 machine, went NaN within the first epoch and broke exact
    # resume), bf16 validation where the CPU has native bf16 (sepnet_core.training.precision).
    # Validation keeps the default half-overlap windows: on a network at validation mean Dice 0.61,
    # val_overlap=0.25 took 0.61x the time but scored 0.022 lower, overlap 0 0.28x and 0.20 lower
    # (bench_cpu_training.py --checkpoint); 12 validations of the 2 valid cases cost about 2 minutes.
    "cpu": {
        "model": ModelConfig(base=8),
        "data": DataConfig(crop_yx=None, sampling="organ", organ_fraction=0.5, augment_flip=True),
        "optim": OptimConfig(lr=1e-2, schedule="poly", warmup_steps=CPU_TRAIN_STEPS // 20, poly_power=2.0),
        "patch_size": (16, 64, 64),
        "batch_size": 2,
        "epochs": CPU_TRAIN_STEPS // CPU_STEPS_PER_EPOCH,
        "iterations_per_epoch": CPU_STEPS_PER_EPOCH,
        "val_points": 12,
        "val_mode": "gaussian",
        "loss_background": True,
        "dice_weighting": "intended",
        "prior_scale_max": 0.5,
    },
    # Seconds: for tests and CI.
    "smoke": {
        "model": ModelConfig(base=2),
        "data": DataConfig(crop_yx=None),
        "patch_size": (8, 32, 32),
        "batch_size": 1,
        "epochs": 2,
        "iterations_per_epoch": 2,
        "device": "cpu",
        "val_mode": "gaussian",
    },
}
PRESETS: tuple[str, ...] = tuple(_PRESET_OVERRIDES)
"""Preset names: "paper", "cpu", "smoke"."""


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The named preset, with top-level fields replaced by ``overrides``.

    ``data_root`` is accepted as a shortcut for ``data=replace(data, data_root=...)``.

    Raises:
        ValueError: unknown preset (valid names listed) or a bad override value.
        TypeError: an unknown override name.
    """
    _choice("preset", name, PRESETS)
    values = dict(_PRESET_OVERRIDES[name])
    data_root = overrides.pop("data_root", None)
    values.update(overrides)
    cfg = TrainConfig(**values)
    if data_root is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, data_root=str(data_root)))
    return cfg


# ---------------------------------------------------------------------------------------- overrides
_TRUE = {"true": True, "1": True, "yes": True, "on": True,
         "false": False, "0": False, "no": False, "off": False}


def _parse(key: str, text: str, hint: Any) -> Any:
    """Parse ``text`` as a value of type ``hint`` (int, float, bool, str, tuple[int, ...], X | None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() in ("none", "null"):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _parse(key, text, inner[0])
    try:
        if hint is bool:
            return _TRUE[text.strip().lower()]
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint is str:
            return text
        if origin is tuple:
            parts = text.strip().strip("[]()").replace("x", ",").split(",")
            return tuple(int(p) for p in parts if p.strip())
    except (KeyError, ValueError):
        raise ValueError(f"override {key}={text!r}: cannot read the value as {hint}") from None
    raise ValueError(f"override {key}={text!r}: unsupported field type {hint}")  # pragma: no cover


def _set(obj: Any, path: list[str], text: str, full_key: str) -> Any:
    cls = type(obj)
    names = [f.name for f in dataclasses.fields(cls)]
    head = path[0]
    if head not in names:
        raise ValueError(f"unknown config key {full_key!r}; valid keys here: {', '.join(names)}")
    current = getattr(obj, head)
    if dataclasses.is_dataclass(current):
        if len(path) == 1:
            sub = [f.name for f in dataclasses.fields(current)]
            raise ValueError(f"{full_key!r} is a section; set one of {', '.join(f'{head}.{s}' for s in sub)}")
        return dataclasses.replace(obj, **{head: _set(current, path[1:], text, full_key)})
    if len(path) > 1:
        raise ValueError(f"unknown config key {full_key!r}: {head!r} is not a section")
    hint = typing.get_type_hints(cls)[head]
    changes = {head: _parse(full_key, text, hint)}
    if isinstance(obj, ModelConfig) and head == "name" and changes[head] != obj.name:
        changes["direction"] = None  # the new model's default direction (None for models without one)
    return dataclasses.replace(obj, **changes)


def apply_overrides(config: TrainConfig, items: Iterable[str]) -> TrainConfig:
    """Return ``config`` with ``key=value`` overrides applied in order.

    Keys are dotted paths (``optim.lr``, ``model.base``, ``data.crop_yx``); values are parsed to the
    field's type: numbers, ``true``/``false``, ``none`` for optional fields, and tuples written as
    ``16x64x64``, ``16,64,64`` or ``[16, 64, 64]``.

    Raises:
        ValueError: an item without ``=``, an unknown key (valid keys listed), or a bad value.
    """
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. optim.lr=1e-3)")
        key, text = item.split("=", 1)
        key = key.strip()
        config = _set(config, key.split("."), text.strip(), key)
    return config

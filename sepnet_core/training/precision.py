"""Training precision: ``TrainConfig.amp`` as one of three words, mapped onto the device rule.

``TrainConfig.amp`` takes one of :data:`AMP_MODES`; the hardware rule is
:func:`sepnet_core.device.resolve_amp` (shared with validation, ``sepnet predict`` and the book):

* ``"auto"`` (default): training under bf16 autocast on CUDA GPUs with bf16, float32 on CPUs and MPS;
  validation by the device rule (bf16 on such GPUs and on CPUs that compute bf16 natively, AVX512-BF16
  or AMX; float32 elsewhere), the same rule as ``sepnet predict``'s default;
* ``"bf16"``: bf16 autocast for training and validation on CUDA; refused for training on a CPU (below;
  use ``"auto"``, which still validates in bf16 where the CPU has it); MPS stays float32;
* ``"off"``: float32 everywhere.

Why "auto" trains float32 on a CPU even where the CPU has native bf16, measured on this project's
2-core avx512_bf16 machine (no AMX; ``benchmarks/bench_cpu_training.py``, the ``cpu`` preset's SepNet
b=8, batch 2 of 16 x 64 x 64): bf16 was no clear win (0.93x the fp32 step time at 1 thread, 1.07x at
2 threads, machine shared); ``cpu``-preset runs under bf16 autocast reached NaN logits within their
first epoch (step 14; 3 of 4 one-epoch tries by :func:`~sepnet_core.training.fit`, with the fused and
with the plain forward path; the float32 run and one bf16 try without
``torch.use_deterministic_algorithms`` stayed finite; the cause is not found); and a stopped-and-resumed
bf16 run did not end with the weights of an uninterrupted one (float32 does, tests/test_training.py).
A later full test run on a quiet machine saw the smoke preset's bf16 CPU run end its first epoch with a NaN
loss too. A lever that is no faster and not stable is not kept: ``"bf16"`` training on a CPU is refused
with a one-line error (:func:`use_bf16`).
Validation in bf16 on the same CPU took 0.73x the float32 time and changed validation mean Dice by
0.001 (0.6091 vs 0.6104, a network trained 1,200 steps), so "auto" keeps it.

The loss is always computed in float32 (``logits.float()``). Older run configs hold ``amp`` as a
boolean: ``True`` reads as ``"auto"``, ``False`` as ``"off"`` (:func:`normalise_amp`).

Example:
    >>> use_bf16("off", "cuda"), use_bf16("auto", "cpu"), use_bf16("auto", "mps")
    (False, False, False)
    >>> validation_amp("auto"), validation_amp("bf16"), validation_amp("off")
    (None, True, False)
"""

from __future__ import annotations

import torch

from sepnet_core.device import resolve_amp

__all__ = ["AMP_MODES", "normalise_amp", "use_bf16", "validation_amp"]

AMP_MODES: tuple[str, ...] = ("auto", "bf16", "off")
"""Valid ``TrainConfig.amp`` values."""

_AS_DEVICE_RULE = {"auto": None, "bf16": True, "off": False}
_BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def normalise_amp(value: object) -> str:
    """``value`` as one of :data:`AMP_MODES`; booleans of older configs and command lines (True, "true",
    "yes", "1" -> "auto"; False, "false", "no", "0" -> "off") are accepted.

    Raises:
        ValueError: anything else (the valid values are listed).
    """
    if isinstance(value, str):
        value = _BOOLEAN_WORDS.get(value.strip().lower(), value)
    if value is True:
        return "auto"
    if value is False:
        return "off"
    if isinstance(value, str) and value in AMP_MODES:
        return value
    raise ValueError(f"amp={value!r} is not valid; valid values: {', '.join(AMP_MODES)}")


def validation_amp(amp: str) -> bool | None:
    """The ``amp`` argument of :func:`sepnet_core.device.resolve_amp` for a mode: None (the device's
    default) for "auto", True for "bf16", False for "off"."""
    return _AS_DEVICE_RULE[normalise_amp(amp)]


def use_bf16(amp: str, device: torch.device | str) -> bool:
    """Whether training on ``device`` runs under bf16 autocast for the ``amp`` mode ("auto": only on
    CUDA, by the device rule; see the module docstring).

    Args:
        amp: One of :data:`AMP_MODES`.
        device: The training device ("cpu", "cuda", "cuda:1", "mps" or a torch.device).

    Raises:
        ValueError: "bf16" on a CPU (measured no faster and not numerically stable; module docstring).
    """
    mode = normalise_amp(amp)
    kind = torch.device(device).type
    if mode == "bf16" and kind == "cpu":
        raise ValueError("amp=bf16: bf16 training on a CPU is not offered (measured no faster than float32 "
                         "and unstable: NaN losses within the first epoch); use amp=auto (float32 training, "
                         "bf16 validation where the CPU has it) or amp=off")
    if mode == "auto" and kind != "cuda":
        return False
    return resolve_amp(validation_amp(mode), device)

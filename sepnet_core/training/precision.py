"""Training precision: bf16 autocast where the hardware computes bf16 natively, float32 elsewhere.

``TrainConfig.amp`` takes one of :data:`AMP_MODES`:

* ``"auto"``: bf16 autocast on CUDA and on CPUs with native bf16 instructions (AVX512-BF16 or AMX-BF16,
  :func:`cpu_has_native_bf16`); float32 on other CPUs (bf16 would be emulated, slower than float32)
  and on MPS.
* ``"bf16"``: bf16 autocast on CUDA and CPU whatever the CPU (for measurements); float32 on MPS.
* ``"off"``: float32 everywhere.

The loss is always computed in float32 (``logits.float()``). Older run configs hold ``amp`` as a
boolean: ``True`` reads as ``"auto"``, ``False`` as ``"off"`` (:func:`normalise_amp`).

Measured on this project's 2-core avx512_bf16 machine (no AMX; ``benchmarks/bench_cpu_training.py``,
the ``cpu`` preset's SepNet b=8, batch 2 of 16 x 64 x 64): bf16 is no clear win (0.93x the fp32 step
time at 1 thread, 1.07x at 2 threads, machine shared), and ``cpu``-preset runs under bf16 autocast
on CPU reached NaN logits within their first epoch (step 14; 3 of 4 one-epoch tries by
:func:`~sepnet_core.training.fit`, with the fused and with the plain forward path), where the float32
run and one bf16 try without ``torch.use_deterministic_algorithms`` (which ``fit`` sets on CPU) stayed
finite; the cause is not found. So the ``cpu`` and ``smoke`` presets train float32 (``amp="off"``);
``"auto"`` is the paper preset's setting, meant for GPUs.

Example:
    >>> use_bf16("off", "cuda"), use_bf16("bf16", "cpu"), use_bf16("auto", "mps")
    (False, True, False)
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

__all__ = ["AMP_MODES", "cpu_has_native_bf16", "normalise_amp", "use_bf16"]

AMP_MODES: tuple[str, ...] = ("auto", "bf16", "off")
"""Valid ``TrainConfig.amp`` values."""

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpuinfo_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU feature flags listed in ``/proc/cpuinfo`` (Linux), or None where the file is missing."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


@cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True if this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16 instructions).

    Reads the flags of ``cpuinfo`` (Linux); elsewhere asks torch's CPU feature checks
    (``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``, where this torch has them).
    """
    flags = _cpuinfo_flags(cpuinfo)
    if flags is not None:
        return any(flag in flags for flag in _BF16_FLAGS)
    names = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    checks = [getattr(torch.cpu, name, None) for name in names]
    return any(bool(check()) for check in checks if check is not None)


def normalise_amp(value: object) -> str:
    """``value`` as one of :data:`AMP_MODES` (booleans of older configs: True -> "auto", False -> "off").

    Raises:
        ValueError: anything else (the valid values are listed).
    """
    if value is True:
        return "auto"
    if value is False:
        return "off"
    if isinstance(value, str) and value in AMP_MODES:
        return value
    raise ValueError(f"amp={value!r} is not valid; valid values: {', '.join(AMP_MODES)}")


def use_bf16(amp: str, device: torch.device | str) -> bool:
    """Whether training on ``device`` runs under bf16 autocast for the ``amp`` mode.

    Args:
        amp: One of :data:`AMP_MODES`.
        device: The training device ("cpu", "cuda", "cuda:1", "mps" or a torch.device).
    """
    mode = normalise_amp(amp)
    kind = torch.device(device).type
    if mode == "off" or kind not in ("cpu", "cuda"):
        return False
    if mode == "bf16" or kind == "cuda":
        return True
    return cpu_has_native_bf16()

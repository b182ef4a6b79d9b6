"""Where networks run and in which precision: one rule shared by training, validation, predict and the book.

Devices: ``"auto"`` (CUDA, then MPS, then the CPU), ``"cpu"``, ``"cuda"`` (the current CUDA device, or
``LOCAL_RANK``'s under torchrun), ``"cuda:N"`` (CUDA device N) or ``"mps"``.

Precision (``amp``): networks run either in float32 or under ``torch.autocast`` in bfloat16 (bf16, as
training autocasts; float16 would round differently from training). The rule for ``amp=None`` (the
default of ``sepnet predict``, :func:`sepnet_core.inference.segment` and the book's evaluation):

* CUDA: bf16 when the GPU supports it (``torch.cuda.is_bf16_supported()``: Ampere and newer);
* CPU: bf16 when the processor computes it natively (AVX512-BF16 or AMX: Intel Cooper Lake / Sapphire
  Rapids and newer, AMD Zen 4 and newer), where it is about 2x faster than float32; float32 on other
  processors (bf16 would be emulated, slower than float32);
* MPS: float32.

``amp=True`` forces bf16 (on CUDA and CPU; MPS stays float32), ``amp=False`` forces float32. Validation
during training uses the same :func:`resolve_amp`, so ``predict`` + ``evaluate`` with the run's
setting reproduces the validation log on every device.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager

import torch

__all__ = ["DEVICE_CHOICES", "autocast", "native_bf16", "parse_device", "pick_device", "resolve_amp"]

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:N", "mps")
"""Device names :func:`pick_device` accepts (``cuda:N`` with N a device index)."""

_CUDA_INDEX = re.compile(r"cuda:(\d+)")


def parse_device(name: str) -> str:
    """``name`` if it is one of :data:`DEVICE_CHOICES` (``cuda:N`` with a number), else ValueError.

    Only the spelling is checked; whether the device exists is :func:`pick_device`'s job.
    """
    if name in ("auto", "cpu", "cuda", "mps") or (isinstance(name, str) and _CUDA_INDEX.fullmatch(name)):
        return name
    raise ValueError(f"unknown device {name!r}; valid devices: auto, cpu, cuda, cuda:N (N = 0, 1, ...), mps")


def _has_mps() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """Resolve a device name (:data:`DEVICE_CHOICES`) to a ``torch.device``.

    Args:
        name: "auto" (cuda if available, else mps, else cpu), "cpu", "cuda", "cuda:N" or "mps".
        local_rank: CUDA device index for "cuda" under ``torchrun`` (modulo the visible devices).

    Raises:
        ValueError: unknown name, or the requested accelerator (or CUDA index) is not available.
    """
    name = parse_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if _has_mps() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} requested but torch sees no CUDA device (use device=auto or "
                             "cpu)")
        count = torch.cuda.device_count()
        if name == "cuda":
            return torch.device("cuda", local_rank % count)
        index = int(name.split(":")[1])
        if index >= count:
            raise ValueError(f"device={name!r} requested but torch sees {count} CUDA device(s) "
                             f"(0..{count - 1})")
        return torch.device("cuda", index)
    if name == "mps":
        if not _has_mps():
            raise ValueError("device='mps' requested but MPS is not available (use device=auto or cpu)")
        return torch.device("mps")
    return torch.device("cpu")


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively (the default of :func:`resolve_amp`, see the module)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
    return False


def resolve_amp(amp: bool | None, device: str | torch.device) -> bool:
    """Whether networks on ``device`` run under bf16 autocast: ``amp`` if given (MPS: always False),
    else :func:`native_bf16` (the rule of the module docstring).

    Raises:
        ValueError: ``amp`` is not True, False or None.
    """
    if amp is not None and not isinstance(amp, bool):
        raise ValueError(f"amp must be True, False or None (the device's default), got {amp!r}")
    device = torch.device(device)
    if device.type not in ("cuda", "cpu"):
        return False
    return native_bf16(device) if amp is None else amp


def autocast(device: str | torch.device, amp: bool) -> AbstractContextManager[object]:
    """``torch.autocast`` in bfloat16 on ``device`` when ``amp`` (a resolved bool), else a no-op context."""
    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bool(amp))

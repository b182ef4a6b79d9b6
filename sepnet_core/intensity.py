"""Intensity transforms from CT Hounsfield units (HU) to network input in [0, 1].

Two kinds, both tiny frozen dataclasses that are callable on a ``numpy.ndarray`` or a ``torch.Tensor``
of any shape (usually a (z, y, x) volume or a (B, 1, D, H, W) batch) and return ``float32`` values in
[0, 1] of the same shape (a tensor stays on its device; NaN stays NaN):

* :class:`SLF`, the paper's *segmental linear function*: a piecewise-linear map through breakpoints
  ``t_0 < ... < t_K`` (HU) with targets ``v_0 <= ... <= v_K``; below ``t_0`` gives ``v_0``, above
  ``t_K`` gives ``v_K``.
* :class:`Window`, the classic window width/level baseline: clip to
  ``[level - width / 2, level + width / 2]`` HU, then scale linearly to [0, 1].

Both serialise to a JSON-able dict with a ``"kind"`` key (:meth:`SLF.to_dict`,
:func:`intensity_from_dict`), which is how checkpoints remember the transform a model was trained with.

Presets (:data:`PRESETS`, :func:`get_intensity`):

========== ===================================================== ==================================
name       definition                                            source
========== ===================================================== ==================================
slf1       HU [-500, -100, 400, 1500] -> [0, 0.1, 0.8, 1.0]       reference code
slf2       HU [-500, -100, 100, 600, 1500] -> [0, .1, .7, .9, 1]  authors' earlier scripts (code)
slf3       HU [-1000, -400, -100, 200, 1000, 2000]                ours (not published), see below
           -> [0, 0.3, 0.35, 0.45, 0.85, 1.0]
soft_tissue W400 / L40                                            ours (values not published)
brain      W80 / L40                                              ours (values not published)
bone       W2000 / L400                                           ours (values not published)
========== ===================================================== ==================================

Why SLF-3 looks the way it does (our design; the paper's SLF-3 is not published). SLF-1 and SLF-2 spend
most of [0, 1] on soft tissue (-100..400 HU gets 0.7 of the range) and flatten everything below -500 HU
(air) and above 1500 HU (dense bone). Ensemble members are most useful when they see the image
differently, so SLF-3 stresses the two ranges the others compress, which are the ranges that delineate
the bony and air-filled organs-at-risk:

* -1000..-400 HU -> 0..0.30 (slope 5.0e-4 /HU): air. The middle ear (tympanic cavity) and the
  neighbouring mastoid air cells are small air spaces; at 3 mm slices they are partial-volumed to
  -900..-400 HU. SLF-1/2 map all of that to 0.
* -400..-100 HU -> 0.30..0.35 (1.7e-4 /HU): fat and partial volumes, deliberately compressed.
* -100..200 HU -> 0.35..0.45 (3.3e-4 /HU): soft tissue, brain, fluid, compressed about 4x relative
  to SLF-1 (the soft-tissue organs are served by SLF-1/2 in the ensemble).
* 200..1000 HU -> 0.45..0.85 (5.0e-4 /HU): cancellous and thin cortical bone, i.e. the mandible body
  and ramus, the condyle and glenoid fossa of the TMJ, the ossicles and walls of the middle ear.
* 1000..2000 HU -> 0.85..1.0 (1.5e-4 /HU): dense cortical bone, petrous bone and the otic capsule that
  encloses the (fluid-filled, ~0 HU) inner ear, and teeth. SLF-1/2 saturate at 1500 HU; keeping a
  slope up to 2000 HU keeps the otic capsule distinct from ordinary cortical bone.

Validation choice: SLF targets must be *non-decreasing* (paper.md states strictly increasing; all
presets are strictly increasing, but we also accept flat segments, e.g. to suppress a range on
purpose), lie in [0, 1] and be finite; breakpoints must be strictly increasing and finite.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "AIR_HU", "SLF", "Window", "Intensity", "PRESETS", "get_intensity", "intensity_from_dict",
    "INTENSITY_KINDS",
]

AIR_HU = -1000.0
"""CT number of air (HU): the fill value wherever an image is padded in HU."""


def _real(arg: str, value: Any) -> float:
    """Convert a real scalar to float; TypeError for non-numbers (bool included), ValueError if not finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{arg} must be a real number, got {value!r} of type {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{arg} must be finite, got {value!r}")
    return out


def _real_tuple(arg: str, values: Any) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{arg} must be a sequence of numbers, got {type(values).__name__}")
    return tuple(_real(f"{arg}[{i}]", v) for i, v in enumerate(list(values)))


def _fmt(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def _check_input(x: Any) -> None:
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"intensity input must be a real-valued tensor, got dtype {x.dtype}")
    elif isinstance(x, np.ndarray):
        kind_ok = np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
        if x.dtype == np.bool_ or not kind_ok:
            raise TypeError(f"intensity input must be an integer or floating ndarray, got dtype {x.dtype}")
    else:
        raise TypeError(
            f"intensity input must be a numpy.ndarray or torch.Tensor of HU values, got {type(x).__name__}"
        )


@dataclass(frozen=True)
class SLF:
    """Segmental linear function: piecewise-linear HU -> [0, 1].

    Args:
        breakpoints_hu: ``t_0 < ... < t_K`` in HU, at least 2, strictly increasing, finite.
        targets: ``v_0 <= ... <= v_K`` in [0, 1], same length as ``breakpoints_hu``, non-decreasing.
        name: Optional label, e.g. ``"slf1"``; kept in :meth:`to_dict`.

    Calling the object on an ndarray or tensor of HU values (any shape, integer or floating dtype)
    returns float32 values of the same shape; a tensor result stays on the input's device and is
    differentiable with respect to the input. Below ``t_0`` the value is ``v_0``, above ``t_K`` it is
    ``v_K``; exactly at a breakpoint it is that breakpoint's target.

    Raises:
        TypeError: A breakpoint or target is not a real number.
        ValueError: Fewer than 2 points, unequal lengths, non-finite values, breakpoints not strictly
            increasing, targets decreasing or outside [0, 1].

    Example:
        >>> slf = SLF([-500, -100, 400, 1500], [0.0, 0.1, 0.8, 1.0], name="slf1")
        >>> [round(float(v), 4) for v in slf(np.array([-1000.0, -300.0, 150.0, 3000.0]))]
        [0.0, 0.05, 0.45, 1.0]
    """

    breakpoints_hu: tuple[float, ...]
    targets: tuple[float, ...]
    name: str = ""

    def __post_init__(self) -> None:
        t = _real_tuple("breakpoints_hu", self.breakpoints_hu)
        v = _real_tuple("targets", self.targets)
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        if len(t) < 2:
            raise ValueError(f"breakpoints_hu must have at least 2 points, got {len(t)}: {_fmt(t)}")
        if len(v) != len(t):
            raise ValueError(
                f"targets must have the same length as breakpoints_hu ({len(t)}), got {len(v)}: {_fmt(v)}"
            )
        for i in range(1, len(t)):
            if not t[i] > t[i - 1]:
                raise ValueError(
                    f"breakpoints_hu must be strictly increasing, got {_fmt(t)} "
                    f"(breakpoints_hu[{i}]={t[i]:g} <= breakpoints_hu[{i - 1}]={t[i - 1]:g})"
                )
        for i, vi in enumerate(v):
            if not 0.0 <= vi <= 1.0:
                raise ValueError(f"targets must lie in [0, 1], got targets[{i}]={vi:g} in {_fmt(v)}")
            if i and vi < v[i - 1]:
                raise ValueError(
                    f"targets must be non-decreasing, got {_fmt(v)} "
                    f"(targets[{i}]={vi:g} < targets[{i - 1}]={v[i - 1]:g})"
                )
        object.__setattr__(self, "breakpoints_hu", t)
        object.__setattr__(self, "targets", v)

    def __call__(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Map HU to [0, 1]; see the class docstring. TypeError for anything but ndarray/Tensor."""
        _check_input(x)
        if isinstance(x, np.ndarray):
            return np.interp(x.astype(np.float64), self.breakpoints_hu, self.targets).astype(np.float32)
        xf = x.to(torch.float32)
        t = torch.tensor(self.breakpoints_hu, dtype=torch.float32, device=x.device)
        v = torch.tensor(self.targets, dtype=torch.float32, device=x.device)
        slope = (v[1:] - v[:-1]) / (t[1:] - t[:-1])
        xc = torch.clamp(xf, t[0], t[-1])
        # segment k covers [t_k, t_{k+1}); right=True puts a value equal to t_k into segment k, so the
        # value exactly at a breakpoint is its target, as in np.interp
        seg = torch.bucketize(xc, t[1:-1], right=True)
        return v[seg] + (xc - t[seg]) * slope[seg]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description: ``{"kind": "slf", "breakpoints_hu": [...], "targets": [...], "name"}``."""
        return {
            "kind": "slf",
            "breakpoints_hu": list(self.breakpoints_hu),
            "targets": list(self.targets),
            "name": self.name,
        }

    def describe(self) -> str:
        """One line for humans, e.g. ``SLF 'slf1': HU [-500, -100, 400, 1500] -> [0, 0.1, 0.8, 1]``."""
        label = f" {self.name!r}" if self.name else ""
        return f"SLF{label}: HU {_fmt(self.breakpoints_hu)} -> {_fmt(self.targets)}"

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class Window:
    """Window width/level: clip HU to ``[level - width/2, level + width/2]``, then scale to [0, 1].

    Args:
        level: Window centre in HU (finite).
        width: Window width in HU (finite, > 0).
        name: Optional label, e.g. ``"brain"``; kept in :meth:`to_dict`.

    Calling the object behaves as for :class:`SLF` (float32 output, same shape, same device).

    Raises:
        TypeError: ``level`` or ``width`` is not a real number.
        ValueError: Non-finite values or ``width <= 0``.

    Example:
        >>> Window(level=40, width=80)(np.array([-100.0, 0.0, 40.0, 80.0, 500.0])).tolist()
        [0.0, 0.0, 0.5, 1.0, 1.0]
    """

    level: float
    width: float
    name: str = ""

    def __post_init__(self) -> None:
        level = _real("level", self.level)
        width = _real("width", self.width)
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        if width <= 0:
            raise ValueError(f"width must be > 0 HU, got {width:g}")
        object.__setattr__(self, "level", level)
        object.__setattr__(self, "width", width)

    @property
    def low_hu(self) -> float:
        """Lower clip bound in HU (maps to 0)."""
        return self.level - self.width / 2.0

    @property
    def high_hu(self) -> float:
        """Upper clip bound in HU (maps to 1)."""
        return self.level + self.width / 2.0

    def __call__(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Clip and scale HU to [0, 1]; TypeError for anything but ndarray/Tensor."""
        _check_input(x)
        lo, hi = self.low_hu, self.high_hu
        if isinstance(x, np.ndarray):
            return ((np.clip(x.astype(np.float64), lo, hi) - lo) / self.width).astype(np.float32)
        return (torch.clamp(x.to(torch.float32), lo, hi) - lo) / self.width

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description, ``{"kind": "window", "level": ..., "width": ..., "name": ...}``."""
        return {"kind": "window", "level": self.level, "width": self.width, "name": self.name}

    def describe(self) -> str:
        """One line for humans, e.g. ``Window 'brain': W80/L40 HU (clip to [0, 80] HU, scale to [0, 1])``."""
        label = f" {self.name!r}" if self.name else ""
        return (
            f"Window{label}: W{self.width:g}/L{self.level:g} HU "
            f"(clip to [{self.low_hu:g}, {self.high_hu:g}] HU, scale to [0, 1])"
        )

    def __str__(self) -> str:
        return self.describe()


Intensity = SLF | Window

_KINDS: dict[str, tuple[type, tuple[str, ...], tuple[str, ...]]] = {
    # kind: (class, required keys, optional keys)
    "slf": (SLF, ("breakpoints_hu", "targets"), ("name",)),
    "window": (Window, ("level", "width"), ("name",)),
}
INTENSITY_KINDS: tuple[str, ...] = tuple(_KINDS)


def intensity_from_dict(d: Mapping[str, Any]) -> Intensity:
    """Rebuild an :class:`SLF` or :class:`Window` from :meth:`SLF.to_dict` / :meth:`Window.to_dict`.

    Args:
        d: Mapping with a ``"kind"`` key (``"slf"`` or ``"window"``) and that kind's fields.

    Returns:
        The transform; ``intensity_from_dict(obj.to_dict()) == obj`` for every valid ``obj``.

    Raises:
        TypeError: ``d`` is not a mapping.
        ValueError: Unknown kind (the message lists the valid ones), missing or unknown keys, or field
            values that fail the class's validation.
    """
    if not isinstance(d, Mapping):
        raise TypeError(f"intensity dict must be a mapping, got {type(d).__name__}")
    kind = d.get("kind")
    if kind not in _KINDS:
        valid = ", ".join(INTENSITY_KINDS)
        raise ValueError(f"intensity dict has unknown kind {kind!r}; valid kinds: {valid}")
    cls, required, optional = _KINDS[kind]
    fields = {k: v for k, v in d.items() if k != "kind"}
    missing = [k for k in required if k not in fields]
    unknown = sorted(set(fields) - set(required) - set(optional))
    if missing or unknown:
        raise ValueError(
            f"intensity dict of kind {kind!r}: missing keys {missing}, unknown keys {unknown}; "
            f"expected {list(required)} and optionally {list(optional)}"
        )
    return cls(**fields)


PRESETS: dict[str, Intensity] = {
    "slf1": SLF((-500, -100, 400, 1500), (0.0, 0.1, 0.8, 1.0), name="slf1"),
    "slf2": SLF((-500, -100, 100, 600, 1500), (0.0, 0.1, 0.7, 0.9, 1.0), name="slf2"),
    "slf3": SLF((-1000, -400, -100, 200, 1000, 2000), (0.0, 0.3, 0.35, 0.45, 0.85, 1.0), name="slf3"),
    "soft_tissue": Window(level=40, width=400, name="soft_tissue"),
    "brain": Window(level=40, width=80, name="brain"),
    "bone": Window(level=400, width=2000, name="bone"),
}
"""Named transforms; values of slf3 and the three windows are ours (see the module docstring)."""


def get_intensity(name: str) -> Intensity:
    """Return the preset transform called ``name`` (one of :data:`PRESETS`).

    Raises:
        ValueError: Unknown name; the message lists the valid names.
    """
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown intensity preset {name!r}; valid names: {', '.join(PRESETS)}") from None

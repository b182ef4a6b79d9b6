"""The model registry, the ``build_model`` front door and :class:`ModelConfig`, the JSON-able
description of a network saved beside every checkpoint."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from sepnet_core.models.blocks import check_direction, check_dropout, check_positive_int
from sepnet_core.models.sepnet import SepNet3D
from sepnet_core.models.unet import UNet3D

__all__ = ["MODELS", "MODEL_NAMES", "ModelConfig", "build_model", "count_parameters"]

#: Registered networks, name -> class. Constructor keywords are the build_model kwargs.
MODELS: dict[str, type[nn.Module]] = {
    "sepnet": SepNet3D,
    "unet": UNet3D,
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def _model_class(name: object) -> type[nn.Module]:
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, one of {list(MODEL_NAMES)}; got {name!r}")
    if name not in MODELS:
        raise ValueError(f"unknown model name {name!r}; valid names: {list(MODEL_NAMES)}")
    return MODELS[name]


def _accepted_arguments(cls: type[nn.Module]) -> tuple[str, ...]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # drop self
    return tuple(p.name for p in params)


def build_model(name: str = "sepnet", **kwargs: Any) -> nn.Module:
    """Build a registered network; with no arguments, the paper's 3D-SepNet (b=24, 23 classes).

    Args:
        name: one of :data:`MODEL_NAMES` ("sepnet", "unet").
        **kwargs: ``base=24, in_channels=1, num_classes=23, dropout=0.5``; "sepnet" also
            ``direction="axial"`` ("axial" | "sagittal" | "coronal").

    Returns:
        The network (``nn.Module`` in training mode), mapping ``(B, in_channels, D, H, W)`` to LOGITS
        ``(B, num_classes, D, H, W)``; D, H, W must be divisible by 8.

    Raises:
        ValueError: unknown ``name`` (lists valid names) or a bad argument value.
        TypeError: ``name`` not a str, or a keyword the model does not accept (named in the message,
            e.g. ``direction`` for "unet").

    Example:
        >>> count_parameters(build_model())
        2505527
        >>> count_parameters(build_model("unet", base=16))
        4080439
    """
    cls = _model_class(name)
    accepted = _accepted_arguments(cls)
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        raise TypeError(
            f"model {name!r} does not accept argument(s) {unknown} "
            f"(values {[kwargs[k] for k in unknown]}); accepted: {list(accepted)}"
        )
    return cls(**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters of ``model`` (all parameters, trainable or not).

    Example:
        >>> count_parameters(nn.Conv3d(1, 2, kernel_size=3))
        56
    """
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class ModelConfig:
    """Read-only description of a network; ``build()`` makes it, ``to_dict()`` saves it as JSON.

    Fields are validated at construction with the same rules as the networks. ``direction`` applies
    to "sepnet" only: for "sepnet" ``None`` becomes "axial"; for a model without a direction it must
    stay ``None``.

    Attributes:
        name: one of :data:`MODEL_NAMES`.
        base: base width b.
        in_channels: input channels.
        num_classes: output classes including background.
        direction: separable direction ("axial" | "sagittal" | "coronal") or ``None``.
        dropout: bottleneck dropout probability, ``0 <= dropout < 1``.

    Raises:
        ValueError: a bad field (message names it and its value).
        TypeError: ``name`` not a str.

    Example:
        >>> cfg = ModelConfig(base=4, direction="coronal")
        >>> ModelConfig.from_dict(cfg.to_dict()) == cfg
        True
        >>> ModelConfig(name="unet").direction is None
        True
    """

    name: str = "sepnet"
    base: int = 24
    in_channels: int = 1
    num_classes: int = 23
    direction: str | None = None
    dropout: float = 0.5

    def __post_init__(self) -> None:
        cls = _model_class(self.name)
        check_positive_int("base", self.base)
        check_positive_int("in_channels", self.in_channels)
        check_positive_int("num_classes", self.num_classes)
        object.__setattr__(self, "dropout", check_dropout("dropout", self.dropout))
        if "direction" in _accepted_arguments(cls):
            object.__setattr__(self, "direction", check_direction(self.direction or "axial"))
        elif self.direction is not None:
            raise ValueError(
                f"direction applies only to separable models; model {self.name!r} got "
                f"direction={self.direction!r} (leave it None)"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; missing keys take defaults.

        Raises:
            TypeError: ``data`` is not a mapping.
            ValueError: an unknown key (valid keys are listed) or a bad value.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"ModelConfig.from_dict needs a mapping, got {type(data).__name__}")
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ValueError(f"unknown ModelConfig key(s) {unknown}; valid keys: {valid}")
        return cls(**dict(data))

    def build(self) -> nn.Module:
        """Build the described network with :func:`build_model`."""
        kwargs = self.to_dict()
        name = kwargs.pop("name")
        if kwargs["direction"] is None:
            del kwargs["direction"]
        return build_model(name, **kwargs)

"""Building blocks of the segmentation networks: conv-norm-act units, the separable residual block,
separable directions and the argument checks shared by every network.

Tensors are ``(B, C, D, H, W)`` with ``D = z`` (slices), ``H = y``, ``W = x``; kernel sizes are
``(kz, ky, kx)``. Normalisation is ``InstanceNorm3d`` without affine parameters, as in the reference
code (LWHYC/SepNet, ``models/layers.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sepnet_core.models import fused
from sepnet_core.models.fused import conv3d_fast, instance_norm_relu

__all__ = [
    "DIRECTIONS",
    "ConvNormAct",
    "SeparableResBlock",
    "set_fast_path",
    "check_direction",
    "check_dropout",
    "check_input",
    "check_positive_int",
    "separable_kernels",
]

Kernel = tuple[int, int, int]

#: Separable direction -> (in-plane kernel, through-plane kernel), both as (kz, ky, kx).
#: The in-plane kernel lies in the anatomical plane that names the direction, the through-plane kernel
#: along its normal: axial plane = (y, x), normal z; sagittal plane = (z, y), normal x (left-right);
#: coronal plane = (z, x), normal y (anterior-posterior).
#: Note: the reference code (``TriResSeparateConv3D``) calls (3, 1, 3) "sagittal" and (3, 3, 1)
#: "coronal"; on its (z, y, x) volumes those planes are anatomically coronal and sagittal respectively.
#: We name directions anatomically, so our "sagittal" is the reference's "coronal" and vice versa.
DIRECTIONS: dict[str, tuple[Kernel, Kernel]] = {
    "axial": ((1, 3, 3), (3, 1, 1)),
    "sagittal": ((3, 3, 1), (1, 1, 3)),
    "coronal": ((3, 1, 3), (1, 3, 1)),
}


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an ``int >= 1`` (``bool`` excluded), else raise.

    Raises:
        ValueError: naming ``name``, the value and the rule.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_dropout(name: str, value: object) -> float:
    """Return ``value`` as float if it is a number with ``0 <= value < 1``, else raise.

    Raises:
        ValueError: naming ``name``, the value and the rule.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a probability with 0 <= {name} < 1, got {value!r}")
    return float(value)


def check_direction(value: object) -> str:
    """Return ``value`` if it is a key of :data:`DIRECTIONS`, else raise.

    Raises:
        ValueError: naming the value and listing the valid directions.
    """
    if not isinstance(value, str) or value not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {value!r}")
    return value


def separable_kernels(direction: str) -> tuple[Kernel, Kernel]:
    """In-plane and through-plane kernels ``(kz, ky, kx)`` of a separable direction.

    Example:
        >>> separable_kernels("sagittal")
        ((3, 3, 1), (1, 1, 3))
    """
    return DIRECTIONS[check_direction(direction)]


def check_input(x: torch.Tensor, in_channels: int, divisor: int) -> None:
    """Check a network input: 5-D ``(B, C, D, H, W)``, ``C == in_channels``, D, H, W divisible by
    ``divisor`` (2 ** number of poolings).

    Raises:
        ValueError: naming the offending shape and the rule.
    """
    if x.ndim != 5:
        raise ValueError(f"input must be 5-D (B, C, D, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(
            f"input has {x.shape[1]} channels (shape {tuple(x.shape)}), model expects {in_channels}"
        )
    if any(s % divisor for s in x.shape[2:]):
        raise ValueError(
            f"spatial size (D, H, W) = {tuple(x.shape[2:])} of input shape {tuple(x.shape)} must be "
            f"divisible by {divisor}"
        )


def _compiling() -> bool:
    """True while ``torch.compile`` traces: it fuses the plain modules itself (the fast path's direct
    oneDNN calls and custom autograd function would only break its graph)."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling is not None and is_compiling())


class ConvNormAct(nn.Sequential):
    """``Conv3d`` (with bias, 'same' zero padding) -> ``InstanceNorm3d(affine=False)`` -> ReLU.

    With ``fast = True`` (the default) the forward pass runs on channels-last memory with a fused
    norm + ReLU (:mod:`sepnet_core.models.fused`); ``fast = False`` (and tracing by ``torch.compile``)
    runs the three modules as they are. Both give the same result up to float rounding; parameters are
    the same.

    Args:
        cin: input channels.
        cout: output channels.
        kernel_size: ``(kz, ky, kx)``, odd sizes.

    Shapes: ``(B, cin, D, H, W) -> (B, cout, D, H, W)``.
    Parameters: ``cin * cout * kz * ky * kx + cout``.

    Example:
        >>> block = ConvNormAct(2, 4, (1, 3, 3))
        >>> block(torch.zeros(1, 2, 4, 8, 8)).shape
        torch.Size([1, 4, 4, 8, 8])
    """

    def __init__(self, cin: int, cout: int, kernel_size: Sequence[int]) -> None:
        kernel = tuple(int(k) for k in kernel_size)
        super().__init__(
            nn.Conv3d(cin, cout, kernel, padding=tuple(k // 2 for k in kernel), bias=True),
            nn.InstanceNorm3d(cout, affine=False),
            nn.ReLU(inplace=True),
        )
        self.fast = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fast or _compiling():
            return super().forward(x)
        conv, norm = self[0], self[1]
        return instance_norm_relu(conv3d_fast(x, conv), norm.eps, inplace=True)


class SeparableResBlock(nn.Module):
    """The 3D-SepNet block: three in-plane and one through-plane convolution with a residual path.

    Main path (axial kernels shown): conv 1x3x3 -> IN -> ReLU -> conv 3x1x1 -> IN -> ReLU ->
    conv 1x3x3 -> IN -> ReLU -> conv 1x3x3 -> IN -> ReLU. Residual: conv 1x1x1. Output:
    ``ReLU(IN(main + residual))``. Every convolution has a bias; IN has no affine parameters.
    Other directions rotate the kernels (see :data:`DIRECTIONS`). Like :class:`ConvNormAct` it runs
    the fast path unless ``fast`` is False (:func:`set_fast_path`).

    Args:
        cin: input channels.
        cout: output channels.
        direction: "axial", "sagittal" or "coronal".

    Shapes: ``(B, cin, D, H, W) -> (B, cout, D, H, W)``.
    Parameters: ``10 * cin * cout + 21 * cout ** 2 + 5 * cout``.

    Raises:
        ValueError: unknown ``direction``.

    Example:
        >>> block = SeparableResBlock(2, 4, "axial")
        >>> sum(p.numel() for p in block.parameters()) == 10 * 2 * 4 + 21 * 4 ** 2 + 5 * 4
        True
        >>> block(torch.zeros(1, 2, 4, 8, 8)).shape
        torch.Size([1, 4, 4, 8, 8])
    """

    def __init__(self, cin: int, cout: int, direction: str = "axial") -> None:
        super().__init__()
        in_plane, through_plane = separable_kernels(direction)
        self.main = nn.Sequential(
            ConvNormAct(cin, cout, in_plane),
            ConvNormAct(cout, cout, through_plane),
            ConvNormAct(cout, cout, in_plane),
            ConvNormAct(cout, cout, in_plane),
        )
        self.residual = nn.Conv3d(cin, cout, 1, bias=True)
        self.norm = nn.InstanceNorm3d(cout, affine=False)
        self.act = nn.ReLU(inplace=True)
        self.fast = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fast or _compiling():
            return self.act(self.norm(self.main(x) + self.residual(x)))
        x = x.contiguous(memory_format=fused.CONV_LAYOUT)  # once for both paths
        out = self.main(x)
        residual = conv3d_fast(x, self.residual)
        # Without a graph the sum can overwrite the main path's output (a temporary of this block).
        out = out.add_(residual) if not torch.is_grad_enabled() else out + residual
        return instance_norm_relu(out, self.norm.eps, inplace=True)


def set_fast_path(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch every :class:`ConvNormAct` and :class:`SeparableResBlock` in ``model`` to the fast
    (channels-last, fused norm + ReLU) or the plain module-by-module forward pass.

    The two paths share parameters and agree up to float rounding; the plain one is kept as the
    readable reference and for comparisons (``benchmarks/bench_train_step.py``).

    Args:
        model: a network or block (changed in place).
        enabled: True for the fast path (the default of every new block), False for the plain one.

    Returns:
        ``model``.

    Example:
        >>> block = set_fast_path(ConvNormAct(1, 2, (1, 3, 3)), enabled=False)
        >>> block.fast
        False
    """
    for module in model.modules():
        if isinstance(module, (ConvNormAct, SeparableResBlock)):
            module.fast = bool(enabled)
    return model


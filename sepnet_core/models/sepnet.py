"""3D-SepNet (Lei et al. 2021): a U-shaped network of separable residual blocks.

Topology follows the reference code (LWHYC/SepNet, ``models/Unet_Separate_3.py``, class
``Unet_Separate``); layer names ``conv1`` ... ``conv8_2`` match it.
"""

from __future__ import annotations

import torch
from torch import nn

from sepnet_core.models.blocks import (
    SeparableResBlock,
    check_direction,
    check_dropout,
    check_input,
    check_positive_int,
)

__all__ = ["SepNet3D"]

#: Dropout3d probability in front of the 1x1x1 classifier (reference code, fixed).
HEAD_DROPOUT = 0.1
#: Three 2x2x2 poolings: D, H, W must be divisible by 2 ** 3.
SIZE_DIVISOR = 8


class SepNet3D(nn.Module):
    """3D-SepNet. Input ``(B, in_channels, D, H, W)`` float, output LOGITS
    ``(B, num_classes, D, H, W)`` (apply softmax over dim 1 for probabilities).

    Encoder (b = ``base``): conv1 in->2b, maxpool 2x2x2, conv2 2b->2b, pool, conv3 2b->4b, pool,
    conv4 4b->8b, conv5 8b->4b, dropout. Decoder: trilinear x2, concat conv3, 8b->4b->2b;
    x2, concat conv2, 4b->2b->2b; x2, concat conv1, 4b->2b->2b. Every "conv" is a
    :class:`~sepnet_core.models.blocks.SeparableResBlock`. Head: ReLU, Dropout3d(0.1),
    1x1x1 conv to ``num_classes``.

    The bottleneck dropout is element-wise ``nn.Dropout`` as in the reference code
    (``self.dropout = nn.Dropout(droprate)``), not channel-wise ``Dropout3d``.

    Args:
        base: base width b (the paper uses 24: 2,505,527 parameters with 23 classes).
        in_channels: input channels.
        num_classes: output classes including background (>= 1).
        dropout: bottleneck dropout probability, ``0 <= dropout < 1``.
        direction: separable direction, "axial", "sagittal" or "coronal"
            (see :data:`~sepnet_core.models.blocks.DIRECTIONS`).

    Shapes: D, H, W must be divisible by 8. In training mode instance norm also needs more than one
    voxel at 1/8 resolution (e.g. D = 8 with H = W = 16 is the smallest useful patch).

    Raises:
        ValueError: a bad argument at construction (message names it and its value); at forward,
            an input that is not 5-D, has the wrong channel count or a size not divisible by 8.

    Example:
        >>> model = SepNet3D(base=4, num_classes=3).eval()
        >>> model(torch.zeros(1, 1, 8, 16, 16)).shape
        torch.Size([1, 3, 8, 16, 16])
    """

    def __init__(
        self,
        base: int = 24,
        in_channels: int = 1,
        num_classes: int = 23,
        dropout: float = 0.5,
        direction: str = "axial",
    ) -> None:
        super().__init__()
        b = check_positive_int("base", base)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.direction = check_direction(direction)
        p = check_dropout("dropout", dropout)

        def block(cin: int, cout: int) -> SeparableResBlock:
            return SeparableResBlock(cin, cout, direction)

        self.pool = nn.MaxPool3d(2, 2)
        self.up = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)
        self.conv1 = block(in_channels, 2 * b)
        self.conv2 = block(2 * b, 2 * b)
        self.conv3 = block(2 * b, 4 * b)
        self.conv4 = block(4 * b, 8 * b)
        self.conv5 = block(8 * b, 4 * b)
        self.dropout = nn.Dropout(p)
        self.conv6_1 = block(8 * b, 4 * b)
        self.conv6_2 = block(4 * b, 2 * b)
        self.conv7_1 = block(4 * b, 2 * b)
        self.conv7_2 = block(2 * b, 2 * b)
        self.conv8_1 = block(4 * b, 2 * b)
        self.conv8_2 = block(2 * b, 2 * b)
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Dropout3d(HEAD_DROPOUT),
            nn.Conv3d(2 * b, num_classes, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, SIZE_DIVISOR)
        skips = [self.conv1(x)]
        skips.append(self.conv2(self.pool(skips[-1])))
        skips.append(self.conv3(self.pool(skips[-1])))
        out = self.dropout(self.conv5(self.conv4(self.pool(skips[-1]))))
        for first, second in ((self.conv6_1, self.conv6_2), (self.conv7_1, self.conv7_2),
                              (self.conv8_1, self.conv8_2)):
            # concat with the skip of the same resolution (conv3, conv2, conv1 in turn); the skip and the
            # concatenation are referenced by nothing else, so without autograd they are freed once used
            out = second(first(torch.cat((self.up(out), skips.pop()), dim=1)))
        return self.head(out).contiguous()  # logits NCDHW whatever the blocks' memory format

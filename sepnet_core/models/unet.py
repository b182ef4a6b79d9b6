"""Reference 3D U-Net of the 3D-SepNet comparison (3x3x3 convolutions throughout).

Topology follows the reference code (LWHYC/SepNet, ``models/Unet.py``, class ``Unet``); layer names
``conv1_1`` ... ``conv7_2`` match it.
"""

from __future__ import annotations

import torch
from torch import nn

from sepnet_core.models.blocks import ConvNormAct, check_dropout, check_input, check_positive_int

__all__ = ["UNet3D"]

#: Dropout3d probability in front of the 1x1x1 classifier (reference code, fixed).
HEAD_DROPOUT = 0.1
#: Three 2x2x2 poolings: D, H, W must be divisible by 2 ** 3.
SIZE_DIVISOR = 8
KERNEL = (3, 3, 3)


class UNet3D(nn.Module):
    """Reference 3D U-Net. Input ``(B, in_channels, D, H, W)`` float, output LOGITS
    ``(B, num_classes, D, H, W)``.

    Every conv is 3x3x3 with bias, then InstanceNorm3d (no affine), ReLU
    (:class:`~sepnet_core.models.blocks.ConvNormAct`). Encoder (b = ``base``): in->b->2b, maxpool
    2x2x2, 2b->2b->4b, pool, 4b->4b->8b, pool, 8b->8b->16b, dropout. Decoder: trilinear x2, concat,
    (16b+8b)->8b->8b; x2, concat, (8b+4b)->4b->4b; x2, concat, (4b+2b)->2b->2b. Head: Dropout3d(0.1),
    1x1x1 conv to ``num_classes``. The bottleneck dropout is element-wise ``nn.Dropout`` as in the
    reference code.

    Args:
        base: base width b (24: 9,179,207 parameters with 23 classes; 16: 4,080,439).
        in_channels: input channels.
        num_classes: output classes including background (>= 1).
        dropout: bottleneck dropout probability, ``0 <= dropout < 1``.

    Shapes: D, H, W must be divisible by 8.

    Raises:
        ValueError: a bad argument at construction (message names it and its value); at forward,
            an input that is not 5-D, has the wrong channel count or a size not divisible by 8.

    Example:
        >>> model = UNet3D(base=2, num_classes=3).eval()
        >>> model(torch.zeros(1, 1, 8, 16, 16)).shape
        torch.Size([1, 3, 8, 16, 16])
    """

    def __init__(
        self,
        base: int = 24,
        in_channels: int = 1,
        num_classes: int = 23,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        b = check_positive_int("base", base)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.num_classes = check_positive_int("num_classes", num_classes)
        p = check_dropout("dropout", dropout)

        def conv(cin: int, cout: int) -> ConvNormAct:
            return ConvNormAct(cin, cout, KERNEL)

        self.pool = nn.MaxPool3d(2, 2)
        self.up = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)
        self.conv1_1, self.conv1_2 = conv(in_channels, b), conv(b, 2 * b)
        self.conv2_1, self.conv2_2 = conv(2 * b, 2 * b), conv(2 * b, 4 * b)
        self.conv3_1, self.conv3_2 = conv(4 * b, 4 * b), conv(4 * b, 8 * b)
        self.conv4_1, self.conv4_2 = conv(8 * b, 8 * b), conv(8 * b, 16 * b)
        self.dropout = nn.Dropout(p)
        self.conv5_1, self.conv5_2 = conv(16 * b + 8 * b, 8 * b), conv(8 * b, 8 * b)
        self.conv6_1, self.conv6_2 = conv(8 * b + 4 * b, 4 * b), conv(4 * b, 4 * b)
        self.conv7_1, self.conv7_2 = conv(4 * b + 2 * b, 2 * b), conv(2 * b, 2 * b)
        self.head = nn.Sequential(
            nn.Dropout3d(HEAD_DROPOUT),
            nn.Conv3d(2 * b, num_classes, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, SIZE_DIVISOR)
        skips = [self.conv1_2(self.conv1_1(x))]
        skips.append(self.conv2_2(self.conv2_1(self.pool(skips[-1]))))
        skips.append(self.conv3_2(self.conv3_1(self.pool(skips[-1]))))
        out = self.dropout(self.conv4_2(self.conv4_1(self.pool(skips[-1]))))
        for first, second in ((self.conv5_1, self.conv5_2), (self.conv6_1, self.conv6_2),
                              (self.conv7_1, self.conv7_2)):
            # concat with the skip of the same resolution (conv3_2, conv2_2, conv1_2 in turn); freed once used
            out = second(first(torch.cat((self.up(out), skips.pop()), dim=1)))
        return self.head(out).contiguous()  # logits NCDHW whatever the blocks' memory format

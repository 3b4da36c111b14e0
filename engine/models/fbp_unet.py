"""The authors' plain U-Net, with the exact module layout of their published checkpoints.

State-dict keys: ``inc.double_conv.{0,1,3,4}.*``, ``down{1..4}.maxpool_conv.1.double_conv.{0,1,3,4}.*``,
``up{1..4}.conv.double_conv.{0,1,3,4}.*``, ``outc.conv.{weight,bias}``. 4 inputs (NIR,R,G,B), 25 outputs.
"""

from __future__ import annotations

from ..classes import NUM_OUTPUTS
from ..torch_import import import_torch
from .card import IN_BANDS

torch = import_torch()
nn = torch.nn
F = torch.nn.functional

IN_CHANNELS = len(IN_BANDS)  # NIR, R, G, B


class DoubleConv(nn.Module):
    """Conv3x3(in->mid) - BN - ReLU - Conv3x3(mid->out) - BN - ReLU, convolutions with bias."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None) -> None:
        super().__init__()
        mid = out_channels if mid_channels is None else mid_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid, kernel_size=3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    """Max-pool 2 then DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Bilinear x2 (align_corners=True), pad to the skip's size, cat [skip, up], DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy = x2.size(2) - x1.size(2)
        dx = x2.size(3) - x1.size(3)
        # Always pad (zero amounts when sizes match) so an export with dynamic sizes has no shape guard.
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    """1x1 convolution to the class logits."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class FbpUNet(nn.Module):
    """The reference U-Net: 4 -> 64,128,256,512,512 -> 256,128,64,64 -> 25 logits."""

    def __init__(self, n_channels: int = IN_CHANNELS, n_classes: int = NUM_OUTPUTS) -> None:
        super().__init__()
        self.n_channels = n_channels
        self.n_classes = n_classes
        self.inc = DoubleConv(n_channels, 64)
        self.down1 = Down(64, 128)
        self.down2 = Down(128, 256)
        self.down3 = Down(256, 512)
        self.down4 = Down(512, 512)
        self.up1 = Up(1024, 256)
        self.up2 = Up(512, 128)
        self.up3 = Up(256, 64)
        self.up4 = Up(128, 64)
        self.outc = OutConv(64, n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)

"""The baseline: a plain U-Net (Ronneberger et al. 2015) of comparable size, trained the same way."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..intensity import check_intensity


@dataclass(frozen=True)
class UNetConfig:
    image_size: int = 256
    in_chans: int = 3
    channels: int = 9  # widths C, 2C, 4C, 8C, 16C; 9 gives 0.62 M parameters, next to cpu-tiny Mamba-MIS (0.66 M)
    levels: int = 5
    intensity: str = "raw"  # input scaling, data.scale_intensity ("percentile" for MR)

    def __post_init__(self):
        check_intensity(self.intensity)


def double_conv(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 conv + BatchNorm + ReLU: the U-Net's block, also Mamba-MIS's convolutional stem."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def up_and_join(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``x`` bilinearly resized to ``skip``'s size and concatenated with it: one step of the U-Net's up path."""
    return torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1)


class UNet(nn.Module):
    """(B, in_chans, S, S) -> (B, 1, S, S) logits: max-pool down, bilinear up, skip concatenation."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.config = cfg
        widths = [cfg.channels * 2**i for i in range(cfg.levels)]
        self.down = nn.ModuleList(
            double_conv(cfg.in_chans if i == 0 else widths[i - 1], w) for i, w in enumerate(widths)
        )
        self.up = nn.ModuleList(
            double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(cfg.levels - 1))
        )
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = block(up_and_join(x, skip))
        return self.head(x)

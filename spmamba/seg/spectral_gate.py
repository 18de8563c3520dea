"""Spectral gate (Mamba-MIS's SG): a learnable filter in the 2-D Fourier domain, the global-filter form the
project's design adopts (docs/mamba_mis.md): FFT -> element-wise complex weights -> inverse FFT.

Every frequency of the map is weighted at once, so each output position depends on every input position
at O(HW log HW) cost: the global dependencies a scan builds only along its path.
"""

from __future__ import annotations

import torch
from timm.layers import DropPath
from torch import nn


class SpectralGate(nn.Module):
    """(B, H, W, C) -> (B, H, W, C): ``irfft2(rfft2(x) * W)`` with one complex weight per frequency and channel.

    The filter is defined for the map size given at construction (the model's input size fixes it); a map
    of another size gets the filter resampled to its frequency grid.
    """

    def __init__(self, dim: int, h: int, w: int):
        super().__init__()
        self.h, self.w = h, w
        weight = torch.zeros(h, w // 2 + 1, dim, 2)
        weight[..., 0] = 1.0  # starts as the identity filter
        self.complex_weight = nn.Parameter(weight + 0.02 * torch.randn_like(weight))

    def filter(self, h: int, w: int) -> torch.Tensor:
        """(h, w//2+1, C) complex filter for an h x w map."""
        weight = self.complex_weight
        if (h, w) != (self.h, self.w):
            grid = weight.permute(2, 3, 0, 1).reshape(1, -1, self.h, self.w // 2 + 1)
            grid = nn.functional.interpolate(grid, size=(h, w // 2 + 1), mode="bilinear", align_corners=True)
            weight = grid.reshape(-1, 2, h, w // 2 + 1).permute(2, 3, 0, 1)
        return torch.view_as_complex(weight.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        spectrum = torch.fft.rfft2(x.float(), dim=(1, 2), norm="ortho")
        return torch.fft.irfft2(spectrum * self.filter(h, w), s=(h, w), dim=(1, 2), norm="ortho").to(x.dtype)


class SpectralGateLayer(nn.Module):
    """x + DropPath(SG(LayerNorm(x))): the spectral sub-block with its own residual."""

    def __init__(self, dim: int, h: int, w: int, drop_path: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.gate = SpectralGate(dim, h, w)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.gate(self.norm(x)))

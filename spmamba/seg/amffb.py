"""AMFFB, the attention-based multi-scale feature fusion bridge between encoder and decoder (Mamba-MIS).

The paper states its parts: spatial and channel attention computed with BFSS (SCABFSS), local spatial
and global channel features of each level integrated, and high-level maps blended with low-level ones
before they reach the decoder. How each is built here is this project's design (docs/mamba_mis.md):

- channel attention: the pooled descriptors of *all* levels form one sequence, read forwards and
  backwards by S6 (channels of different levels inform each other), one sigmoid gate per channel;
- spatial attention: per level, the channel-mean and channel-max maps through a small BFSS, a sigmoid
  gate per position;
- fusion: every level adds the others' features, projected to its width and resized to its size, with a
  learned scale per level that starts at zero (the bridge starts as attention only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .bfss import BFSS, BidirectionalScan1D


class ChannelAttentionBFSS(nn.Module):
    """Global channel attention over the levels' pooled descriptors, scanned as one sequence both ways."""

    def __init__(self, widths: list[int], d_model: int = 8, d_state: int = 8):
        super().__init__()
        self.widths = widths
        self.embed = nn.Linear(1, d_model)
        self.scan = BidirectionalScan1D(d_model, d_state)
        self.head = nn.Linear(d_model, 1)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Levels (B, C_i, H_i, W_i) -> per-level gates (B, C_i, 1, 1) in (0, 1)."""
        pooled = torch.cat([f.mean((2, 3)) for f in feats], 1)  # (B, sum C)
        seq = self.embed(pooled[..., None])
        gates = torch.sigmoid(self.head(seq + self.scan(seq)))[..., 0]
        return [g[:, :, None, None] for g in torch.split(gates, self.widths, dim=1)]


class SpatialAttentionBFSS(nn.Module):
    """Local spatial attention of one level: channel mean and max maps through a small BFSS."""

    def __init__(self, d_model: int = 8, d_state: int = 8):
        super().__init__()
        self.embed = nn.Conv2d(2, d_model, 3, padding=1)
        self.scan = BFSS(d_model, d_state, expand=1)
        self.head = nn.Conv2d(d_model, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1, H, W) gate in (0, 1)."""
        e = self.embed(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1))
        e = e + self.scan(e.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return torch.sigmoid(self.head(e))


class MultiScaleFusion(nn.Module):
    """Each level plus the other levels' features, 1x1-projected to its width and resized to its size."""

    def __init__(self, widths: list[int]):
        super().__init__()
        n = len(widths)
        self.proj = nn.ModuleList(
            nn.ModuleList(nn.Conv2d(widths[j], widths[i], 1) if j != i else nn.Identity() for j in range(n))
            for i in range(n)
        )
        self.scale = nn.Parameter(torch.zeros(n))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, target in enumerate(feats):
            others = sum(
                F.interpolate(self.proj[i][j](f), size=target.shape[-2:], mode="bilinear", align_corners=False)
                for j, f in enumerate(feats)
                if j != i
            )
            out.append(target + self.scale[i] * others)
        return out


class AMFFB(nn.Module):
    """Encoder skip features (B, C_i, H_i, W_i), fine to coarse -> the features the decoder receives."""

    def __init__(self, widths: list[int], d_model: int = 8, d_state: int = 8):
        super().__init__()
        self.channel = ChannelAttentionBFSS(widths, d_model, d_state)
        self.spatial = nn.ModuleList(SpatialAttentionBFSS(d_model, d_state) for _ in widths)
        self.fusion = MultiScaleFusion(widths)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        gates = self.channel(feats)
        attended = [f + f * g * s(f) for f, g, s in zip(feats, gates, self.spatial, strict=True)]
        return self.fusion(attended)

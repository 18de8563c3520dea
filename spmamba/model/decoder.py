"""SPSS decoder: four stages of Mamba + local-conv blocks from 1/32 back to 1/4 resolution."""

from __future__ import annotations

import math

import torch
from timm.layers import trunc_normal_
from torch import nn

from .ss2d import VSSLayer


def _conv_in_silu(cin: int, cout: int, k: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups), nn.InstanceNorm2d(cout), nn.SiLU())


class LocalPath(nn.Module):
    """1x1 conv -> depthwise k x k -> 1x1 conv, each followed by InstanceNorm + SiLU."""

    def __init__(self, dim: int, kernel: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv_in_silu(dim, dim, 1), _conv_in_silu(dim, dim, kernel, groups=dim), _conv_in_silu(dim, dim, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def init_conv_fan_out(m: nn.Module) -> None:
    """The reference code's SPSS-block conv init: N(0, sqrt(2 / fan_out)), zero bias."""
    if isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def init_linear_norm(m: nn.Module) -> None:
    """The reference decoder's init: trunc-normal(0.02) Linear weights, zero biases, LayerNorm 1 / 0."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class SPSSBlock(nn.Module):
    """Mamba branch (a stack of VSS layers) beside 5x5 and 7x7 conv paths, fused by a 1x1 conv.

    All VSS layers of one block share one drop-path rate, as in the reference code.
    """

    def __init__(self, dim: int, mamba_layers: int, drop_path: float = 0.0, **ss2d_kwargs):
        super().__init__()
        self.mamba = nn.Sequential(*(VSSLayer(dim, drop_path, **ss2d_kwargs) for _ in range(mamba_layers)))
        self.local5 = LocalPath(dim, 5)
        self.local7 = LocalPath(dim, 7)
        self.fuse = nn.Conv2d(3 * dim, dim, 1)
        self.apply(init_conv_fan_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        m = self.mamba(x).permute(0, 3, 1, 2)
        xc = x.permute(0, 3, 1, 2)
        y = self.fuse(torch.cat([m, self.local5(xc), self.local7(xc)], 1))
        return x + y.permute(0, 2, 3, 1)


class PatchExpand(nn.Module):
    """Linear C -> 2C, pixel shuffle to 2x resolution with C/2 channels, LayerNorm."""

    def __init__(self, dim: int):
        super().__init__()
        self.expand = nn.Linear(dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(dim // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        x = self.expand(x).view(b, h, w, 2, 2, c // 2).permute(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, c // 2)
        return self.norm(x)


def group_sizes(depth: int) -> list[int]:
    """Mamba layers per SPSS block: blocks of 3 when the depth allows, else blocks of 2."""
    size = 3 if depth % 3 == 0 else 2
    sizes = [size] * (depth // size)
    return sizes + ([depth % size] if depth % size else [])


def drop_path_rates(depths: tuple[int, ...], drop_path: float) -> list[list[float]]:
    """Per stage, one rate per SPSS block: the reference code takes ``linspace(0, drop_path, sum(depths))``
    reversed (strongest at the bottleneck), cuts it into per-stage slices of length depth, and gives
    block b of a stage the slice's b-th rate."""
    rates = torch.linspace(0, drop_path, sum(depths)).tolist()[::-1]
    starts = [sum(depths[:s]) for s in range(len(depths))]
    return [rates[start : start + len(group_sizes(d))] for start, d in zip(starts, depths, strict=True)]


class SPSSDecoder(nn.Module):
    """Stage i runs at bottleneck_size * 2**i with dim / 2**i channels; stages 1-3 are the outputs."""

    def __init__(self, dim: int, depths: tuple[int, ...], drop_path: float = 0.0, **ss2d_kwargs):
        super().__init__()
        self.stages = nn.ModuleList()
        for s, (depth, rates) in enumerate(zip(depths, drop_path_rates(depths, drop_path), strict=True)):
            d = dim // 2**s
            blocks = [PatchExpand(2 * d)] if s else []
            blocks += [SPSSBlock(d, n, rate, **ss2d_kwargs) for n, rate in zip(group_sizes(depth), rates, strict=True)]
            self.stages.append(nn.Sequential(*blocks))
        self.out_dims = [dim // 2**s for s in range(1, len(depths))]
        self.apply(init_linear_norm)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, h, w) fused map -> [(B, C/8, 8h, 8w), (B, C/4, 4h, 4w), (B, C/2, 2h, 2w)] (fine to coarse)."""
        x = x.permute(0, 2, 3, 1)
        outs = []
        for s, stage in enumerate(self.stages):
            x = stage(x)
            if s:
                outs.insert(0, x.permute(0, 3, 1, 2).contiguous())
        return outs

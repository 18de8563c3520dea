"""Mamba-MIS: a U-shaped segmentation network of BFSS + spectral-gate blocks with the AMFFB bridge.

The layout is this project's reading of the paper's abstract (the paper published no code): a stem down to
a quarter of the resolution, four BFSS stages with patch merging, a mirrored decoder with patch expanding,
the stem's way back up and a 1x1 head. Every preset's stem is convolutional (two U-Net levels at full and
half resolution); VM-UNet's 4x4 patch stem with a final 4x expand (optionally with a full-resolution detail
branch before the head) is kept as ``stem="patch"``. ``MambaMISConfig`` holds every choice, including the
ablation switches.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import nn

from ..intensity import check_intensity
from .amffb import AMFFB
from .bfss import BFSS
from .spectral_gate import SpectralGateLayer
from .unet import double_conv, up_and_join

STEMS = ("patch", "conv")


@dataclass(frozen=True)
class MambaMISConfig:
    image_size: int = 256
    in_chans: int = 3
    channels: int = 16  # C: stage widths C, 2C, 4C, 8C
    depths: tuple[int, ...] = (1, 1, 1, 1)
    decoder_depths: tuple[int, ...] = (1, 1, 1)
    d_state: int = 8
    expand: int = 2
    drop_path: float = 0.1
    bfss_directions: int = 4  # 4 = BFSS; 1 = a single raster scan (ablation)
    spectral_gate: bool = True
    bridge: bool = True
    bridge_dim: int = 8
    detail_branch: bool = False  # a full-resolution conv of the image joined before the head (ours)
    # hidden width / C of a channel MLP sub-block after the spectral gate (ours); 0 = none, as in checkpoints
    # from before the option
    mlp_ratio: int = 0
    # "patch": 4x4 patch embedding; "conv": U-Net levels at full and half resolution (ours, every preset's).
    # The field's default is "patch" because checkpoints from before the option were all patch-stem.
    stem: str = "patch"
    intensity: str = "raw"  # input scaling, data.scale_intensity ("percentile" for MR)

    def __post_init__(self):
        check_intensity(self.intensity)
        if self.stem not in STEMS:
            raise ValueError(f"unknown stem {self.stem!r}; choose one of {', '.join(STEMS)}")
        if self.stem == "conv" and self.detail_branch:
            raise ValueError(
                "the detail branch belongs to the patch stem (stem='patch', --stem patch); the conv stem already sees "
                "full resolution"
            )

    @classmethod
    def preset(cls, name: str, **overrides) -> MambaMISConfig:
        if name not in SEG_PRESETS:
            raise ValueError(f"unknown segmentation preset {name!r}; choose one of {', '.join(SEG_PRESETS)}")
        return dataclasses.replace(SEG_PRESETS[name], **overrides)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> MambaMISConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields})


def stored_stem(config: dict) -> str:
    """A stored config's stem: configs written before the option have none, and were patch-stem."""
    return config.get("stem", MambaMISConfig.stem)


SEG_PRESETS = {
    "cpu-tiny": MambaMISConfig(stem="conv"),
    "cpu-small": MambaMISConfig(channels=24, depths=(1, 1, 2, 1), decoder_depths=(1, 1, 1), stem="conv"),
    "paper-scale": MambaMISConfig(channels=64, depths=(2, 2, 4, 2), decoder_depths=(2, 2, 2), d_state=16, stem="conv"),
}


class ChannelMLP(nn.Module):
    """x + DropPath(MLP(LN(x))): the per-position channel MLP (GELU) that transformer, GFNet and VMamba-v2
    blocks pair with their token mixer. BFSS mixes channels only through its projections and the spectral gate
    is linear, so without it a block has little non-linear channel mixing (ours, not the paper's)."""

    def __init__(self, dim: int, ratio: int, drop_path: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, ratio * dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.mlp(self.norm(x)))


class MISBlock(nn.Module):
    """x + DropPath(BFSS(LN(x))), then the spectral-gate sub-block and the channel MLP (where configured),
    each with its own residual (channels last)."""

    def __init__(self, dim: int, size: int, cfg: MambaMISConfig, drop_path: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.bfss = BFSS(dim, cfg.d_state, cfg.expand, cfg.bfss_directions)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.spectral = SpectralGateLayer(dim, size, size, drop_path) if cfg.spectral_gate else nn.Identity()
        self.mlp = ChannelMLP(dim, cfg.mlp_ratio, drop_path) if cfg.mlp_ratio else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.spectral(x + self.drop_path(self.bfss(self.norm(x)))))


class PatchMerging(nn.Module):
    """(B, H, W, C) -> (B, H/2, W/2, 2C): each 2x2 neighbourhood concatenated and projected."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduce(self.norm(x))


class PatchExpand(nn.Module):
    """(B, H, W, C_in) -> (B, rH, rW, C_out) by a linear layer and a pixel shuffle."""

    def __init__(self, dim_in: int, dim_out: int, ratio: int = 2):
        super().__init__()
        self.ratio = ratio
        self.expand = nn.Linear(dim_in, dim_out * ratio * ratio, bias=False)
        self.norm = nn.LayerNorm(dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_shuffle(self.expand(x).permute(0, 3, 1, 2), self.ratio).permute(0, 2, 3, 1)
        return self.norm(x)


class DetailHead(nn.Module):
    """The decoder's full-resolution output joined with a 3x3 convolution of the image itself, then fused by
    a 3x3 convolution. Without it no layer sees pixel-level edges: the 4x4 patch stem and the linear 4x
    expand work on whole patches. Ours, not the paper's (docs/mamba_mis.md)."""

    def __init__(self, in_chans: int, dim: int):
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(in_chans, dim, 3, padding=1), nn.GroupNorm(1, dim), nn.GELU())
        self.fuse = nn.Sequential(nn.Conv2d(2 * dim, dim, 3, padding=1), nn.GroupNorm(1, dim), nn.GELU())

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([features, self.image(image)], 1))


class PatchStem(nn.Sequential):
    """VM-UNet's stem: a 4x4 stride-4 conv and GroupNorm, to the quarter-resolution map (channels last); no
    skips for ``PatchTail``. (A Sequential so that patch-stem checkpoints keep their tensor names.)"""

    def __init__(self, in_chans: int, dim: int):
        super().__init__(nn.Conv2d(in_chans, dim, 4, stride=4), nn.GroupNorm(1, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return super().forward(x).permute(0, 2, 3, 1), []


class PatchTail(PatchExpand):
    """The decoder's end for ``PatchStem``: a linear 4x patch expand back to full resolution (channels first)."""

    def __init__(self, dim: int):
        super().__init__(dim, dim, ratio=4)
        self.out_channels = dim

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        return super().forward(x).permute(0, 3, 1, 2)


class ConvStem(nn.Module):
    """Two U-Net levels in front of the first Mamba stage: a double conv at full resolution (C/2 channels),
    max-pool, a double conv at half resolution (C), max-pool. Returns the quarter-resolution map (channels
    last) and both full- and half-resolution maps as skips for ``ConvTail``. Ours, not the paper's: the
    4x4 patch stem leaves no layer that sees pixel-level edges (docs/mamba_mis.md)."""

    def __init__(self, in_chans: int, dim: int):
        super().__init__()
        self.at_full = double_conv(in_chans, dim // 2)
        self.at_half = double_conv(dim // 2, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        full = self.at_full(x)
        half = self.at_half(F.max_pool2d(full, 2))
        return F.max_pool2d(half, 2).permute(0, 2, 3, 1), [full, half]


class ConvTail(nn.Module):
    """The decoder's end for ``ConvStem`` (channels last in, first out): bilinear 2x up, concatenation with
    the stem's half-resolution map, a double conv; the same again at full resolution (the U-Net's up path)."""

    def __init__(self, dim: int):
        super().__init__()
        self.at_half = double_conv(2 * dim, dim)
        self.at_full = double_conv(dim + dim // 2, dim // 2)
        self.out_channels = dim // 2

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        for block, skip in ((self.at_half, skips[1]), (self.at_full, skips[0])):
            x = block(up_and_join(x, skip))
        return x


class MambaMIS(nn.Module):
    """(B, in_chans, S, S) images -> (B, 1, S, S) lesion logits."""

    def __init__(self, cfg: MambaMISConfig):
        super().__init__()
        self.config = cfg
        c, n = cfg.channels, len(cfg.depths)
        widths = [c * 2**i for i in range(n)]
        sizes = [cfg.image_size // 4 // 2**i for i in range(n)]
        rates = torch.linspace(0, cfg.drop_path, sum(cfg.depths)).tolist()
        stem, tail = (ConvStem, ConvTail) if cfg.stem == "conv" else (PatchStem, PatchTail)
        self.stem = stem(cfg.in_chans, c)
        self.encoder = nn.ModuleList()
        self.merge = nn.ModuleList()
        k = 0
        for i, depth in enumerate(cfg.depths):
            self.encoder.append(
                nn.Sequential(*(MISBlock(widths[i], sizes[i], cfg, rates[k + j]) for j in range(depth)))
            )
            k += depth
            if i < n - 1:
                self.merge.append(PatchMerging(widths[i]))
        self.bridge = AMFFB(widths, cfg.bridge_dim, cfg.d_state) if cfg.bridge else None
        self.expand = nn.ModuleList(PatchExpand(widths[i + 1], widths[i]) for i in reversed(range(n - 1)))
        self.decoder = nn.ModuleList(
            nn.Sequential(*(MISBlock(widths[i], sizes[i], cfg, 0.0) for _ in range(cfg.decoder_depths[n - 2 - i])))
            for i in reversed(range(n - 1))
        )
        self.final = tail(c)
        self.detail = DetailHead(cfg.in_chans, c) if cfg.detail_branch else None
        self.head = nn.Conv2d(self.final.out_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, stem_skips = self.stem(x)
        skips = []
        for i, stage in enumerate(self.encoder):
            h = stage(h)
            skips.append(h)
            if i < len(self.merge):
                h = self.merge[i](h)
        if self.bridge is not None:
            skips = [s.permute(0, 2, 3, 1) for s in self.bridge([s.permute(0, 3, 1, 2) for s in skips])]
        h = skips[-1]
        for expand, stage, skip in zip(self.expand, self.decoder, reversed(skips[:-1]), strict=True):
            h = stage(expand(h) + skip)
        h = self.final(h, stem_skips)
        if self.detail is not None:
            h = self.detail(h, x)
        return self.head(h)

"""SS2D: the 2-D selective scan layer, reading the map along several scan directions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from ..scan import scan_permutations
from ..ssm import selective_scan_directions


class SS2D(nn.Module):
    """in-proj -> depthwise conv + SiLU -> S6 over each direction -> sum -> norm * SiLU(z) -> out-proj.

    Every direction has its own x_proj / dt_proj / A / D, stacked along a
    leading K axis so all directions run as one grouped scan.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        expand: int = 2,
        scan_order: str = "circular_hilbert",
        num_directions: int = 8,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dt_floor: float = 1e-4,
    ):
        super().__init__()
        d_inner = expand * d_model
        self.d_inner, self.d_state, self.dt_rank = d_inner, d_state, math.ceil(d_model / 16)
        self.scan_order, self.k = scan_order, num_directions
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv = nn.Conv2d(d_inner, d_inner, 3, padding=1, groups=d_inner)
        k, r = num_directions, self.dt_rank
        self.x_proj_weight = nn.Parameter(torch.empty(k, r + 2 * d_state, d_inner))
        nn.init.uniform_(self.x_proj_weight, -(d_inner**-0.5), d_inner**-0.5)
        self.dt_proj_weight = nn.Parameter(torch.empty(k, d_inner, r).uniform_(-(r**-0.5), r**-0.5))
        dt = torch.exp(torch.rand(k, d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_floor)
        self.dt_proj_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(k * d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(k * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def scan(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> (B, D, H, W): S6 along every direction, outputs summed on the map."""
        return self.scan_directions(x).sum(1).view_as(x)

    def scan_directions(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> (B, K, D, H*W): each direction's S6 outputs, each at the map position it read."""
        b, d, h, w = x.shape
        if h != w:
            raise ValueError(f"scan orders are defined on square maps; got {h}x{w}")
        perm = scan_permutations(self.scan_order, h, self.k, str(x.device))
        return self.s6(x.reshape(b, d, h * w), perm)

    def s6(self, u: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
        """(B, D, L) sequence -> (B, K, D, L): read in order ``perm[k]`` (K, L) through direction k's S6
        parameters, all K as one grouped scan, each output at the position it was read from."""
        b, d, length = u.shape
        k = perm.shape[0]
        # The projections are per position: computed on u in its own order, then only their few rows are read
        # in each direction's order (not the D rows of u).
        x_dbl = torch.einsum("bdl,kcd->bkcl", u, self.x_proj_weight)
        x_dbl = torch.gather(x_dbl, 3, perm.view(1, k, 1, length).expand(b, -1, x_dbl.shape[2], -1))
        dts, Bs, Cs = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        return selective_scan_directions(
            u,
            perm,
            dts,
            -torch.exp(self.A_log.float()),
            Bs,
            Cs,
            self.D.float(),
            delta_bias=self.dt_proj_bias.reshape(-1).float(),
            delta_softplus=True,
            dt_proj=self.dt_proj_weight,  # the step sizes' projection, applied inside the scan
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        xin, z = self.in_proj(x).chunk(2, dim=-1)
        xin = F.silu(self.conv(xin.permute(0, 3, 1, 2).contiguous()))
        y = self.scan(xin).permute(0, 2, 3, 1)
        return self.out_proj(self.out_norm(y) * F.silu(z))


class VSSLayer(nn.Module):
    """x + DropPath(SS2D(LayerNorm(x))) on channels-last maps."""

    def __init__(self, dim: int, drop_path: float = 0.0, **ss2d_kwargs):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.ss2d = SS2D(dim, **ss2d_kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.ss2d(self.norm(x)))

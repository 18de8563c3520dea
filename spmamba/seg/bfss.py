"""BFSS, bidirectional fusion selective scanning (Mamba-MIS): the map read row by row and column by column,
each forwards and backwards, every direction with its own S6 parameters, and the four outputs fused on
the map with learned per-channel weights.

The paper names the idea only; the directions and the fusion rule are this project's choice
(docs/mamba_mis.md). It is SP-Mamba's SS2D layer with the raster order and a learned fusion in place of
the plain sum, so both models share one selective scan (numba on CPU, mamba-ssm on CUDA).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.ss2d import SS2D

BFSS_ORDER = "raster"  # identity = row-major, transpose = column-major; 4 directions add both reversed


class BFSS(SS2D):
    """in-proj -> depthwise conv + SiLU -> S6 in each direction -> learned fusion -> norm * SiLU(z) -> out-proj.

    ``num_directions`` 4 is BFSS; 1 is the single raster scan of the ablation. Fusion weights are a softmax
    over directions per channel, scaled by the number of directions, so they start as the plain sum.
    """

    def __init__(self, d_model: int, d_state: int = 16, expand: int = 2, num_directions: int = 4):
        super().__init__(d_model, d_state, expand, scan_order=BFSS_ORDER, num_directions=num_directions)
        self.fusion_logits = nn.Parameter(torch.zeros(num_directions, self.d_inner))

    def fusion_weights(self) -> torch.Tensor:
        """(K, D) weights of each direction's output per channel; they sum to K over directions."""
        return self.k * torch.softmax(self.fusion_logits, dim=0)

    def scan(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> (B, D, H, W). The fusion is a product and a sum over directions: as an ``einsum``
        it became a batched matmul of one tiny product per channel, 2-4x slower on CPU both ways."""
        ys = self.scan_directions(x)  # (B, K, D, L)
        return (ys * self.fusion_weights()[:, :, None]).sum(1).view_as(x)


class BidirectionalScan1D(SS2D):
    """A sequence read forwards and backwards, each with its own S6 parameters, the two outputs added: the
    channel attention's scan over pooled channel descriptors, where the sequence is not a map."""

    def __init__(self, d_model: int, d_state: int = 8, expand: int = 2):
        super().__init__(d_model, d_state, expand, scan_order=BFSS_ORDER, num_directions=2)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, L, C)."""
        xin, z = self.in_proj(seq).chunk(2, dim=-1)
        xin = F.silu(self.conv(xin.transpose(1, 2)[:, :, None]))[:, :, 0]  # (B, D, L): the 3x3 conv on a line
        forwards = torch.arange(xin.shape[-1], device=xin.device)
        y = self.s6(xin, torch.stack([forwards, forwards.flip(0)])).sum(1).transpose(1, 2)
        return self.out_proj(self.out_norm(y) * F.silu(z))

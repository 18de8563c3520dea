"""Medical-Prototype module: distance of each bottleneck position to learned normal prototypes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MedicalPrototype(nn.Module):
    """K banks of one C-d prototype per position; D(i,j) = min_k (1 - max cos over the p x p window).

    Windows are clipped at the border (not padded), so a corner compares with
    (p+1)^2/4 positions and an edge with p(p+1)/2 (docs/method.md).
    """

    def __init__(self, channels: int, size: int, banks: int = 10, window: int = 3, init_std: float = 1.0):
        super().__init__()
        if window % 2 == 0:
            raise ValueError(f"the prototype window must be odd, got {window}")
        self.size, self.window = size, window
        self.prototypes = nn.Parameter(torch.randn(size * size, banks, channels) * init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) fused map -> (B, H, W) prototype distance D.

        One batched matmul per window offset, (H, W, K, C) @ (H, W, C, B), on a
        positions-first copy of the features: no p*p-fold unfold copy is made.
        """
        b, c, h, w = x.shape
        if h * w != self.prototypes.shape[0]:
            raise ValueError(f"prototype module built for {self.size}x{self.size}, got {h}x{w}")
        p, r = self.window, self.window // 2
        feats = F.pad(F.normalize(x, dim=1), (r, r, r, r)).permute(2, 3, 1, 0)  # (H+2r, W+2r, C, B)
        inside = F.pad(x.new_ones(h, w, dtype=torch.bool), (r, r, r, r))
        protos = F.normalize(self.prototypes, dim=-1).view(h, w, -1, c)  # (H, W, K, C)
        best = None
        for dy in range(p):
            for dx in range(p):
                sim = torch.matmul(protos, feats[dy : dy + h, dx : dx + w])  # (H, W, K, B)
                sim = sim.masked_fill(~inside[dy : dy + h, dx : dx + w, None, None], float("-inf"))
                best = sim if best is None else torch.maximum(best, sim)
        return (1 - best).amin(2).permute(2, 0, 1)


def prototype_distance_loop(x: torch.Tensor, prototypes: torch.Tensor, window: int) -> torch.Tensor:
    """Per-position Python loop, the way the authors' reference code computes D (for tests/bench)."""
    b, c, h, w = x.shape
    r = window // 2
    out = x.new_empty(b, h, w)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                best = None
                for k in range(prototypes.shape[1]):
                    proto = prototypes[i * w + j, k]
                    sims = [
                        F.cosine_similarity(proto, x[n, :, ii, jj], dim=0)
                        for ii in range(max(0, i - r), min(h, i + r + 1))
                        for jj in range(max(0, j - r), min(w, j + r + 1))
                    ]
                    d = 1 - torch.stack(sims).max()
                    best = d if best is None else torch.minimum(best, d)
                out[n, i, j] = best
    return out

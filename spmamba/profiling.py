"""Parameter and FLOP counts, reported in the paper's convention (fvcore: one multiply-add = 1 FLOP)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .model import SPMamba
from .model.ss2d import SS2D
from .ssm import uses_cpu_kernel


@dataclass
class ModelCost:
    encoder_params: int
    trainable_params: int
    dense_macs: int  # convolutions and matrix products, counted by torch
    scan_macs: int  # selective scans, counted analytically

    @property
    def total_params(self) -> int:
        return self.encoder_params + self.trainable_params

    @property
    def gmacs(self) -> float:
        return (self.dense_macs + self.scan_macs) / 1e9


def scan_macs(batch: int, length: int, d_inner: int, d_state: int, dt_rank: int = 0) -> int:
    """VMamba's count for one selective scan: 9 B L D N, plus B D L for the D skip; plus B L D R for the step
    sizes' projection where the scan kernel forms them (torch's counter does not see inside it)."""
    return 9 * batch * length * d_inner * d_state + batch * d_inner * length * (1 + dt_rank)


def forward_macs(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(dense multiply-adds counted by torch, selective-scan multiply-adds counted analytically) of one
    forward pass of any model built from SS2D layers (SP-Mamba's decoder, Mamba-MIS's BFSS)."""
    scans = []

    def hook(mod: SS2D, inp, out):
        shape = inp[0].shape  # (B, H, W, C) maps or (B, L, C) sequences
        inside = mod.dt_rank if uses_cpu_kernel(inp[0]) else 0  # elsewhere it is an einsum torch counts
        scans.append(scan_macs(shape[0], shape[1:-1].numel(), mod.d_inner * mod.k, mod.d_state, inside))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, SS2D)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    return counter.get_total_flops() // 2, sum(scans)


def model_cost(model: SPMamba, batch: int = 1) -> ModelCost:
    size = model.config.image_size
    dense, scans = forward_macs(model, torch.rand(batch, 3, size, size))
    enc = sum(p.numel() for p in model.encoder.parameters())
    trainable = sum(p.numel() for p in model.trainable_parameters())
    return ModelCost(enc, trainable, dense, scans)

"""Scan directions read through the kernel's index against a gathered copy per direction, in one run.

    python bench/bench_directions.py [--threads 2] [--repeat 7]

Every SS2D layer (SP-Mamba's decoder, Mamba-MIS's BFSS) scans its map in K orders. ``gathered`` is the scan's
layout before 2026-12-07 (``ssm.gathered_directions``): a copy of the map per direction (``torch.gather``), one
scan, each output put back by a scatter, and both again in the backward pass. ``through index`` is
``selective_scan_directions``: the kernel reads the map and writes each output through the direction's
permutation. Both compute ``x_proj`` as this checkout does (on the map, its few rows gathered), so the
comparison is of the scan's layout alone. Both run the same model, weights and inputs, the two
layouts alternating within each repetition so drift in machine speed hits both alike; medians.

Rows: SP-Mamba ``paper`` and ``paper-lite0`` forward per 256² image (with the floor: the model's FLOPs at
the matmul rate measured in this run, as bench_forward.py), a ``cpu-lite0`` training step at 128² (batch 8,
cached features: forward, loss, backward, AdamW), and Mamba-MIS per 256² image with the U-Net beside it.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import alternating, parser, start, under  # noqa: E402
from spmamba import ssm  # noqa: E402
from spmamba.model import SPMamba, SPMambaConfig, ss2d  # noqa: E402
from spmamba.profiling import model_cost  # noqa: E402
from spmamba.seg.mamba_mis import MambaMIS, MambaMISConfig  # noqa: E402
from spmamba.seg.unet import UNet, UNetConfig  # noqa: E402


@contextmanager
def gathered():
    """Every SS2D layer on the gathered layout."""
    fused = ss2d.selective_scan_directions
    ss2d.selective_scan_directions = ssm.gathered_directions
    try:
        yield
    finally:
        ss2d.selective_scan_directions = fused


def training_step(model: SPMamba, size: int, batch: int = 8) -> Callable[[], None]:
    feats = [f.detach() for f in model.encoder(torch.rand(batch, 1, size, size))]
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)

    def step() -> None:
        loss = model.loss(model.forward_features(feats))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def spmamba_rows(variants: dict[str, Callable[[], AbstractContextManager]], gflops: float, repeat: int) -> None:
    """Print the SP-Mamba rows of a before/after kernel bench: ``paper`` and ``paper-lite0`` forward per 256²
    image against the floor (the model's FLOPs at the matmul rate measured in this run), and a ``cpu-lite0``
    training step; ``variants`` holds the before and the after, in that order, alternating (medians)."""
    before_name, after_name = variants
    x = torch.rand(1, 3, 256, 256)
    for preset in ("paper", "paper-lite0"):
        torch.manual_seed(0)
        model = SPMamba(SPMambaConfig.preset(preset), encoder_weights=None).eval()  # weights do not change speed
        floor = 2 * model_cost(model).gmacs / gflops * 1e3
        with torch.no_grad():
            ms = alternating({name: under(v, lambda m=model: m(x)) for name, v in variants.items()}, repeat)
        before, after = ms[before_name], ms[after_name]
        print(
            f"| SP-Mamba `{preset}` forward, 256² | {before:.0f} | {after:.0f} | {before / after:.2f}× | "
            f"floor {floor:.0f} ms | {before / floor:.1f}× → {after / floor:.1f}× |"
        )
    torch.manual_seed(0)
    model = SPMamba(SPMambaConfig.preset("cpu-lite0"), encoder_weights=None).train()
    step = training_step(model, 128)
    ms = alternating({name: under(v, step) for name, v in variants.items()}, repeat)
    before, after = ms[before_name], ms[after_name]
    print(f"| SP-Mamba `cpu-lite0` training step, 8 × 128² | {before:.0f} | {after:.0f} | {before / after:.2f}× | | |")


def mis_row(before: float, after: float, unet: float, *more: str) -> str:
    """The Mamba-MIS row of a before/after bench (ms per 256² image), with the U-Net beside it."""
    cells = [f"{before:.0f}", f"{after:.0f}", f"{before / after:.2f}×", f"U-Net {unet:.0f} ms"]
    cells += [f"{before / unet:.2f}× → {after / unet:.2f}×", *more]
    return "| Mamba-MIS (C 18) forward, 256² | " + " | ".join(cells) + " |"


def main() -> None:
    ap = parser(__doc__, repeat=7)
    args = ap.parse_args()
    gflops = start(
        args.threads, ["measurement", "gathered ms", "through index ms", "speed-up", "beside it", "ratio to it"]
    )
    variants = {"gathered": gathered, "through index": nullcontext}
    spmamba_rows(variants, gflops, args.repeat)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 256, 256)
    mis = MambaMIS(MambaMISConfig.preset("cpu-tiny", image_size=256, channels=18)).eval()
    unet = UNet(UNetConfig(image_size=256)).eval()
    with torch.no_grad():
        runs = {name: under(v, lambda: mis(x)) for name, v in variants.items()}
        ms = alternating({**runs, "U-Net": lambda: unet(x)}, args.repeat)
    print(mis_row(ms["gathered"], ms["through index"], ms["U-Net"]))


if __name__ == "__main__":
    main()

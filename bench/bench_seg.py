"""Segmentation models side by side: Mamba-MIS (and its ablations) against the U-Net baseline.

Per model: parameters (at 256 and at the training size: the spectral gates hold one weight per frequency),
GMACs (dense + selective scans), CPU inference ms per 256x256 image (batch 1; the models take turns within
each repetition, so drift in machine speed hits all alike),
training images/s at the training size (batch 8, forward + backward + AdamW step), and each as a ratio
to the U-Net's in the same run. The Mamba-MIS rows below the shipped network are it with one switch each,
at its width (C 18), as the LGG ablations were trained.

    python bench/bench_seg.py [--threads 2] [--repeat 5] [--train-size 128]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import alternating, parser, start, timeit  # noqa: E402
from spmamba.profiling import forward_macs  # noqa: E402
from spmamba.seg.mamba_mis import MambaMIS, MambaMISConfig  # noqa: E402
from spmamba.seg.train import loss_fn  # noqa: E402
from spmamba.seg.unet import UNet, UNetConfig  # noqa: E402

SHIPPED = {"channels": 18}  # cpu-tiny as the shipped networks and the LGG ablations are built (docs/mamba_mis.md)


def mis(size: int, **switches) -> MambaMIS:
    """The shipped Mamba-MIS with the given config fields changed."""
    return MambaMIS(MambaMISConfig.preset("cpu-tiny", image_size=size, **{**SHIPPED, **switches}))


MODELS = {
    "U-Net (C 9)": lambda size: UNet(UNetConfig(image_size=size)),
    "Mamba-MIS cpu-tiny, C 18 (shipped)": lambda size: mis(size),
    "  single raster scan": lambda size: mis(size, bfss_directions=1),
    "  no spectral gate": lambda size: mis(size, spectral_gate=False),
    "  no bridge": lambda size: mis(size, bridge=False),
    "  C 16 (the preset's own width)": lambda size: mis(size, channels=16),
    "  C 16, patch stem": lambda size: mis(size, channels=16, stem="patch"),
    "Mamba-MIS cpu-small": lambda size: MambaMIS(MambaMISConfig.preset("cpu-small", image_size=size)),
}


def train_rate(model: torch.nn.Module, size: int, repeat: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x, m = torch.rand(8, 3, size, size), (torch.rand(8, 1, size, size) > 0.7).float()

    def step():
        loss_fn(model.train()(x), m).backward()
        opt.step()
        opt.zero_grad()

    return 8 / (timeit(step, repeat=repeat, warmup=1) / 1e3)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--train-size", type=int, default=128, help="input size of the training measurement")
    args = ap.parse_args()
    start(
        args.threads,
        [
            "model",
            "params (M)",
            f"params @{args.train_size} (M)",
            "GMACs @256",
            "ms / 256² image",
            "vs U-Net",
            f"train img/s @{args.train_size}",
            "vs U-Net",
        ],
    )
    x = torch.rand(1, 3, 256, 256)
    models = {}
    for name, make in MODELS.items():
        torch.manual_seed(0)
        models[name] = make(256).eval()
    with torch.no_grad():  # the models in turn within each repetition: drift in machine speed hits all alike
        ms = alternating({name: lambda m=model: m(x) for name, model in models.items()}, args.repeat)
    base_ms, base_rate = ms["U-Net (C 9)"], None
    for name, model in models.items():
        dense, scans = forward_macs(model, x)
        torch.manual_seed(0)
        trained = MODELS[name](args.train_size)
        rate = train_rate(trained, args.train_size, max(2, args.repeat // 2))
        base_rate = base_rate or rate
        params, params_trained = (sum(p.numel() for p in m.parameters()) / 1e6 for m in (model, trained))
        print(
            f"| {name} | {params:.2f} | {params_trained:.2f} | {(dense + scans) / 1e9:.2f} | {ms[name]:.0f} | "
            f"{ms[name] / base_ms:.2f}× | {rate:.1f} | {rate / base_rate:.2f}× |"
        )


if __name__ == "__main__":
    main()

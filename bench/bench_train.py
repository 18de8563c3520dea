"""Training throughput with and without the encoder feature cache, side by side (same batches, same model).

    python bench/bench_train.py [--config cpu-lite0] [--images 96] [--threads 2] [--repeat 1]

Uses the real training images when found (SPMAMBA_DATA or ../shared/data/zhanglab), else random images:
the speed does not depend on the pixels.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import parser, start  # noqa: E402
from spmamba.data import data_root, discover, load_batch, subsample  # noqa: E402
from spmamba.model import PRESETS, SPMamba, SPMambaConfig  # noqa: E402


def main() -> None:
    ap = parser(__doc__, repeat=1)
    ap.add_argument("--config", default="cpu-lite0", choices=sorted(PRESETS))
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    start(args.threads, ["config", "images", "mode", "images/s", "ratio"])
    cfg = SPMambaConfig.preset(args.config)
    torch.manual_seed(0)
    model = SPMamba(cfg, encoder_weights="imagenet").train()
    root = data_root()
    if root and (root / "zhanglab").is_dir():
        images = load_batch(subsample(discover(root / "zhanglab").train, args.images), cfg.image_size)
    else:
        images = torch.rand(args.images, 1, cfg.image_size, cfg.image_size)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
    batches = [torch.arange(i, min(i + args.batch_size, len(images))) for i in range(0, len(images), args.batch_size)]
    cache = [model.encoder(images[b]) for b in batches]

    def epoch(cached: bool) -> float:
        t = time.perf_counter()
        for i, b in enumerate(batches):
            feats = cache[i] if cached else model.encoder(images[b])
            loss = model.loss(model.forward_features(feats))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return len(images) / (time.perf_counter() - t)

    epoch(True)  # warm-up: kernel compilation, allocator
    rates = {"encoder every epoch": [], "feature cache": []}
    for _ in range(args.repeat):  # interleaved so drift in machine speed hits both alike
        rates["encoder every epoch"].append(epoch(False))
        rates["feature cache"].append(epoch(True))
    base = max(rates["encoder every epoch"])
    for mode, r in rates.items():
        print(f"| {args.config} | {len(images)} | {mode} | {max(r):.2f} | {max(r) / base:.2f}× |")


if __name__ == "__main__":
    main()

"""Demo latency: one slider event (re-score + redraw from cached maps) vs re-running the network, side by side.

    python bench/bench_demo.py [--threads 2] [--repeat 20]

The slider budget is 50 ms per event for a 256x256 map. The network column is what an event would cost
if the demo re-ran the model instead of using its cache.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import parser, start, timeit  # noqa: E402
from demo import handlers  # noqa: E402
from spmamba.inference import predict_maps  # noqa: E402
from spmamba.model import SPMamba, SPMambaConfig  # noqa: E402
from spmamba.scoring import ComponentMaps, ScoreWeights  # noqa: E402


def main() -> None:
    args = parser(__doc__, repeat=20).parse_args()
    start(args.threads, ["map", "display", "slider event ms (cached maps)", "budget ms", "network re-run ms", "ratio"])
    g = torch.Generator().manual_seed(0)
    for preset in ("cpu-lite0", "paper-lite0"):
        cfg = SPMambaConfig.preset(preset)
        size = cfg.image_size
        model = SPMamba(cfg, encoder_weights=None).eval()
        image = torch.rand(1, 1, size, size, generator=g)
        maps = predict_maps(model, image)
        analysis = handlers.Analysis(
            ComponentMaps(maps.per_scale, maps.prototype), np.random.default_rng(0).random((512, 512), np.float32),
            "bench", ScoreWeights(), {"threshold": 1.0, "normal_scores": list(np.linspace(0.5, 1.5, 92))}, {})
        weights = [dataclasses.replace(ScoreWeights(), beta=b) for b in np.linspace(-0.1, 0.1, 8)]
        i = iter(range(10 ** 9))
        slider = timeit(lambda: handlers.render(analysis, weights[next(i) % 8]), repeat=args.repeat, warmup=2)
        network = timeit(lambda: predict_maps(model, image), repeat=3, warmup=1)
        print(f"| {size}×{size} ({preset}) | 512×512 | {slider:.1f} | 50 | {network:.0f} | {network / slider:.0f}× |")


if __name__ == "__main__":
    main()

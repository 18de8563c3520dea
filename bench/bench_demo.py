"""Demo latency: one slider event (re-score + redraw from cached maps, and Gradio encoding the outputs)
vs re-running the network, side by side.

    python bench/bench_demo.py [--threads 2] [--repeat 20]

The slider budget is 50 ms per event for a 256x256 map, server side. "handler" is the event function;
"+ encode" adds what Gradio does before sending: the overlay image to WebP, the figure to JSON. The network
column is what an event would cost if the demo re-ran the model instead of using its cache.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import parser, start, timeit  # noqa: E402
from spmamba.checkpoint import save_checkpoint  # noqa: E402
from spmamba.demo import handlers  # noqa: E402
from spmamba.inference import predict_maps  # noqa: E402
from spmamba.model import SPMamba, SPMambaConfig  # noqa: E402
from spmamba.scoring import ScoreWeights  # noqa: E402


def main() -> None:
    args = parser(__doc__, repeat=20).parse_args()
    start(
        args.threads,
        ["map", "display", "handler ms", "+ encode ms (event)", "budget ms", "network re-run ms", "network / event"],
    )
    g = torch.Generator().manual_seed(0)
    image_out, plot_out = gr.Image(type="numpy"), gr.Plot()
    tmp = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    for preset in ("cpu-lite0", "cpu-lite0-256"):
        cfg = SPMambaConfig.preset(preset)
        size = cfg.image_size
        model = SPMamba(cfg, encoder_weights=None).eval()
        path = tmp / f"{preset}.safetensors"  # a real checkpoint file, because the verdict is placed by it
        save_checkpoint(
            path,
            model,
            ScoreWeights(),
            include_encoder=True,
            calibration={"threshold": 1.0, "normal_scores": list(np.linspace(0.5, 1.5, 92))},
        )
        image = torch.rand(1, 1, size, size, generator=g)
        maps = predict_maps(model, image)
        yy, xx = np.mgrid[:512, :512] / 512
        display = (0.5 + 0.4 * np.sin(9 * xx) * np.cos(7 * yy)).astype(np.float32)  # smooth, like an X-ray
        analysis = handlers.Analysis(
            maps,
            display,
            str(path),
            ScoreWeights(),
            {"threshold": 1.0, "normal_scores": list(np.linspace(0.5, 1.5, 92))},
            {},
        )
        weights = [dataclasses.replace(ScoreWeights(), beta=b) for b in np.linspace(-0.1, 0.1, 8)]
        i = iter(range(10**9))

        def event(encode: bool, analysis=analysis, weights=weights, i=i):
            r = handlers.render(analysis, weights[next(i) % 8])
            if encode:
                image_out.postprocess(r.overlay)
                plot_out.postprocess(r.figure)

        handler = timeit(lambda: event(False), repeat=args.repeat, warmup=2)
        full = timeit(lambda: event(True), repeat=args.repeat, warmup=2)
        network = timeit(lambda m=model, x=image: predict_maps(m, x), repeat=3, warmup=1)
        print(
            f"| {size}×{size} ({preset}) | 512×512 | {handler:.1f} | {full:.1f} | 50 | {network:.0f} | "
            f"{network / full:.0f}× |"
        )


if __name__ == "__main__":
    main()

"""Full forward pass, 256x256, batch 1: numba scan vs the same model on the PyTorch reference scan.

For each encoder: ms per image, and the ratio to a floor = the model's FLOPs
(2 x multiply-adds, dense + scans) at this machine's measured matmul throughput.

    python bench/bench_forward.py [--threads 2] [--repeat 5] [--no-reference]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import parser, start, timeit  # noqa: E402
from spmamba.model import SPMamba, SPMambaConfig  # noqa: E402
from spmamba.profiling import model_cost  # noqa: E402
from spmamba.ssm import reference_backend  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--no-reference", action="store_true", help="skip the slow reference-scan run")
    args = ap.parse_args()
    gflops = start(
        args.threads,
        [
            "config",
            "encoder",
            "GFLOPs (2×MAC)",
            "ours ms/image",
            "floor ms",
            "ours / floor",
            "reference-scan ms/image",
            "speed-up",
        ],
    )
    for preset in ("paper", "paper-lite0"):
        torch.manual_seed(0)
        model = SPMamba(SPMambaConfig.preset(preset), encoder_weights=None).eval()  # weights do not change speed
        cost = model_cost(model)
        x = torch.rand(1, 3, 256, 256)
        with torch.no_grad():
            ours = timeit(lambda m=model, x=x: m(x), repeat=args.repeat, warmup=2)
            if args.no_reference:
                ref = float("nan")
            else:
                with reference_backend():
                    ref = timeit(lambda m=model, x=x: m(x), repeat=1, warmup=0)
        flops = 2 * cost.gmacs
        floor = flops / gflops * 1e3
        ref_s = "not run | –" if ref != ref else f"{ref:.0f} | {ref / ours:.1f}×"
        print(
            f"| {preset} | {model.config.encoder} | {flops:.1f} | {ours:.0f} | {floor:.0f} | {ours / floor:.1f} | "
            f"{ref_s} |"
        )


if __name__ == "__main__":
    main()

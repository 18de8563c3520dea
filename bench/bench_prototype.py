"""Medical-Prototype module: vectorised vs the naive per-position loop, batch 16, paper sizes.

python bench/bench_prototype.py [--batch 16] [--threads 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import parser, start, timeit  # noqa: E402
from spmamba.model.prototype import MedicalPrototype, prototype_distance_loop  # noqa: E402


def main() -> None:
    ap = parser(__doc__, repeat=20)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    start(args.threads, ["implementation", "ms per batch", "speed-up"])
    torch.manual_seed(0)
    mod = MedicalPrototype(512, 8, banks=10, window=3)  # paper: 8x8x512, K=10, p=3
    x = torch.randn(args.batch, 512, 8, 8)
    with torch.no_grad():
        fast = mod(x)
        slow = prototype_distance_loop(x, mod.prototypes, 3)
        t_fast = timeit(lambda: mod(x), repeat=args.repeat, warmup=3)
        t_slow = timeit(lambda: prototype_distance_loop(x, mod.prototypes, 3), repeat=1, warmup=0)
    err = (fast - slow).abs().max().item()
    print(f"| naive per-position loop | {t_slow:.0f} | 1× |")
    print(f"| vectorised (one matmul per window offset) | {t_fast:.2f} | {t_slow / t_fast:.0f}× |")
    print(f"max |difference| = {err:.1e}")


if __name__ == "__main__":
    main()

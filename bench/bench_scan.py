"""CPU selective scan: our numba kernel vs the sequential PyTorch reference, side by side.

One SS2D call per decoder stage of the paper (8 directions, d_state 16, batch 1):
L = 64, 256, 1024, 4096 with d_inner = 1024, 512, 256, 128. The floor is the
scan's work in VMamba's count (9 multiply-adds per step, channel and state)
at this machine's measured matmul throughput.

    python bench/bench_scan.py [--threads 2] [--repeat 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import parser, start, timeit  # noqa: E402
from spmamba.profiling import scan_macs  # noqa: E402
from spmamba.ssm import selective_scan_fn, selective_scan_ref  # noqa: E402

STAGES = [(64, 1024), (256, 512), (1024, 256), (4096, 128)]
K, N = 8, 16


def inputs(L: int, d: int):
    g = torch.Generator().manual_seed(L)
    u = torch.randn(1, K * d, L, generator=g)
    delta = torch.randn(1, K * d, L, generator=g) - 2
    A = -torch.exp(torch.randn(K * d, N, generator=g).clamp(max=2))
    B, C = torch.randn(1, K, N, L, generator=g), torch.randn(1, K, N, L, generator=g)
    D, bias = torch.randn(K * d, generator=g), torch.randn(K * d, generator=g) * 0.1
    return [t.requires_grad_() for t in (u, delta, A, B, C, D, bias)]


def fwd_bwd(fn, xs, repeat, backward_too=True):
    def forward():
        with torch.no_grad():
            fn(*xs[:6], delta_bias=xs[6], delta_softplus=True)

    def backward():
        y = fn(*xs[:6], delta_bias=xs[6], delta_softplus=True)
        y.backward(torch.ones_like(y))

    t_f = timeit(forward, repeat=repeat)
    if not backward_too:
        return t_f, float("nan")
    t_fb = timeit(backward, repeat=repeat)
    return t_f, t_fb - t_f


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument(
        "--ref-backward-max-len",
        type=int,
        default=1024,
        help="autograd through the reference loop takes minutes beyond this length",
    )
    args = ap.parse_args()
    gflops = start(
        args.threads,
        [
            "L",
            "d_inner",
            "ref fwd ms",
            "ours fwd ms",
            "fwd speed-up",
            "ref bwd ms",
            "ours bwd ms",
            "bwd speed-up",
            "ours bwd/fwd",
            "floor ms",
            "ours fwd / floor",
        ],
    )
    for L, d in STAGES:
        xs = inputs(L, d)
        ref_f, ref_b = fwd_bwd(selective_scan_ref, xs, repeat=1, backward_too=L <= args.ref_backward_max_len)
        our_f, our_b = fwd_bwd(selective_scan_fn, xs, repeat=args.repeat)
        floor = 2 * scan_macs(1, L, K * d, N) / (gflops * 1e9) * 1e3
        ran = ref_b == ref_b  # NaN when the reference backward was skipped
        ref_b_s = f"{ref_b:.0f} | {our_b:.1f} | {ref_b / our_b:.0f}×" if ran else f"not run | {our_b:.1f} | –"
        print(
            f"| {L} | {d} | {ref_f:.0f} | {our_f:.1f} | {ref_f / our_f:.0f}× | {ref_b_s} | "
            f"{our_b / our_f:.2f} | {floor:.1f} | {our_f / floor:.1f} |"
        )


if __name__ == "__main__":
    main()

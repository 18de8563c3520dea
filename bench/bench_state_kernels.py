"""Scan kernels with d_state a compile-time constant against the generic kernels, in one run.

    python bench/bench_state_kernels.py [--threads 2] [--repeat 7]

``spmamba._scan_cpu`` compiles its forward and backward kernels a second time for each state size in
``FIXED_STATES`` (16: SP-Mamba's), with the state loop's length a constant. ``generic`` is the kernel every
state size ran before 2026-12-07 (``_FIXED`` emptied for the call); ``fixed`` is what ships. Both run the
same model, weights and inputs, alternating within each repetition (``bench.common.alternating``); medians.
Outputs agree to float rounding (tests/test_ssm.py compares the two kernels on random inputs).

Rows: SP-Mamba ``paper`` and ``paper-lite0`` forward per 256² image, with the floor (the model's FLOPs at the
matmul rate measured in this run), and a ``cpu-lite0`` training step at 128² (batch 8, cached features).
Mamba-MIS (d_state 8) keeps the generic kernels, which are faster there.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_directions import training_step  # noqa: E402
from bench.common import alternating, parser, start  # noqa: E402
from spmamba import _scan_cpu  # noqa: E402
from spmamba.model import SPMamba, SPMambaConfig  # noqa: E402
from spmamba.profiling import model_cost  # noqa: E402


@contextmanager
def generic():
    """Every state size on the generic kernels."""
    fixed = _scan_cpu._FIXED
    _scan_cpu._FIXED = {}
    try:
        yield
    finally:
        _scan_cpu._FIXED = fixed


VARIANTS = {"generic": generic, "fixed": nullcontext}


def main() -> None:
    ap = parser(__doc__, repeat=7)
    args = ap.parse_args()
    gflops = start(args.threads, ["measurement", "generic ms", "fixed ms", "speed-up", "floor", "ratio to it"])
    x = torch.rand(1, 3, 256, 256)
    for preset in ("paper", "paper-lite0"):
        torch.manual_seed(0)
        model = SPMamba(SPMambaConfig.preset(preset), encoder_weights=None).eval()  # weights do not change speed
        floor = 2 * model_cost(model).gmacs / gflops * 1e3
        with torch.no_grad():
            ms = alternating(lambda m=model: m(x), VARIANTS, args.repeat)
        before, after = ms["generic"], ms["fixed"]
        print(
            f"| SP-Mamba `{preset}` forward, 256² | {before:.0f} | {after:.0f} | {before / after:.2f}× | "
            f"{floor:.0f} ms | {before / floor:.1f}× → {after / floor:.1f}× |"
        )
    torch.manual_seed(0)
    model = SPMamba(SPMambaConfig.preset("cpu-lite0"), encoder_weights=None).train()
    ms = alternating(training_step(model, 128), VARIANTS, args.repeat)
    before, after = ms["generic"], ms["fixed"]
    print(f"| SP-Mamba `cpu-lite0` training step, 8 × 128² | {before:.0f} | {after:.0f} | {before / after:.2f}× | | |")


if __name__ == "__main__":
    main()

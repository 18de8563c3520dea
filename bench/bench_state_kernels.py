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

An earlier commit's whole models against this checkout's: ``bench_model_revisions.py --before REV`` (it replaced
this script's ``--before``, which swapped in REV's kernels and so needed their interface unchanged).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_directions import spmamba_rows  # noqa: E402
from bench.common import parser, start  # noqa: E402
from spmamba import _scan_cpu  # noqa: E402


@contextmanager
def generic():
    """Every state size on the generic kernels."""
    fixed = _scan_cpu._FIXED
    _scan_cpu._FIXED = {}
    try:
        yield
    finally:
        _scan_cpu._FIXED = fixed


def main() -> None:
    args = parser(__doc__, repeat=7).parse_args()
    columns = ["measurement", "generic ms", "fixed ms", "speed-up", "beside it", "ratio to it"]
    gflops = start(args.threads, columns)
    spmamba_rows({"generic": generic, "fixed": nullcontext}, gflops, args.repeat)


if __name__ == "__main__":
    main()

"""Scan kernels with d_state a compile-time constant against the generic kernels, in one run.

    python bench/bench_state_kernels.py [--threads 2] [--repeat 7]
    python bench/bench_state_kernels.py --before REV   # this checkout's kernels against commit REV's

``spmamba._scan_cpu`` compiles its forward and backward kernels a second time for each state size in
``FIXED_STATES`` (16: SP-Mamba's), with the state loop's length a constant. ``generic`` is the kernel every
state size ran before 2026-12-07 (``_FIXED`` emptied for the call); ``fixed`` is what ships. Both run the
same model, weights and inputs, alternating within each repetition (``bench.common.alternating``); medians.
Outputs agree to float rounding (tests/test_ssm.py compares the two kernels on random inputs).

Rows: SP-Mamba ``paper`` and ``paper-lite0`` forward per 256² image, with the floor (the model's FLOPs at the
matmul rate measured in this run), and a ``cpu-lite0`` training step at 128² (batch 8, cached features).
Mamba-MIS (d_state 8) keeps the generic kernels, which are faster there.

``--before REV`` runs the same rows with commit REV's ``spmamba/_scan_cpu.py`` (read with ``git show``, as
``bench_scan_revisions.py`` does for the kernels alone) against this checkout's: a kernel change timed on whole
models.
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_directions import spmamba_rows  # noqa: E402
from bench.bench_scan_revisions import load_revision  # noqa: E402
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


def revision(module):
    """A context in which every state size runs ``module``'s kernels (an earlier commit's ``_scan_cpu``)."""

    @contextmanager
    def swapped():
        kept = _scan_cpu._FIXED, _scan_cpu._GENERIC
        _scan_cpu._FIXED, _scan_cpu._GENERIC = module._FIXED, module._GENERIC
        try:
            yield
        finally:
            _scan_cpu._FIXED, _scan_cpu._GENERIC = kept

    return swapped


def main() -> None:
    ap = parser(__doc__, repeat=7)
    ap.add_argument("--before", help="time this commit's kernels against this checkout's instead")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            variants = {args.before: revision(load_revision(args.before, Path(tmp))), "this checkout": nullcontext}
        else:
            variants = {"generic": generic, "fixed": nullcontext}
        names = list(variants)
        columns = ["measurement", f"{names[0]} ms", f"{names[1]} ms", "speed-up", "beside it", "ratio to it"]
        gflops = start(args.threads, columns)
        spmamba_rows(variants, gflops, args.repeat)


if __name__ == "__main__":
    main()

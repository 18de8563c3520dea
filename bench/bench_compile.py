"""What a kernel change costs once per install: numba's compile time of the scan kernels on an empty cache.

    python bench/bench_compile.py --before REV

The kernels are compiled on their first call and cached on disk (``cache=True``), so a user pays this once, on
the first analysis or training step after installing. Each side runs in its own process with an empty
``NUMBA_CACHE_DIR``: REV's ``spmamba/_scan_cpu.py`` (read with ``git show``) and this checkout's. Printed: the
first forward call and the first backward call at float32, d_state 16 (SP-Mamba's kernels), in seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_scan_revisions import calls, inputs, load_revision  # noqa: E402
from bench.common import parser, start  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def first_calls(rev: str) -> str:
    """In this process: the first forward and backward call of ``rev``'s kernels (``.`` for the checkout's)."""
    with tempfile.TemporaryDirectory() as tmp:
        if rev == ".":
            from spmamba import _scan_cpu as kernels
        else:
            kernels = load_revision(rev, Path(tmp))
        forward, backward, _ = calls(kernels, inputs(32, 64, 16, 2, np.random.default_rng(0)))
        t = time.perf_counter()
        forward()
        t_fwd = time.perf_counter() - t
        t = time.perf_counter()
        backward()
        return f"{t_fwd:.1f} | {time.perf_counter() - t:.1f}"


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--before", required=True, help="the commit whose kernels to compile beside this checkout's")
    ap.add_argument("--only", help=argparse.SUPPRESS)  # the child process: one side's first calls
    args = ap.parse_args()
    if args.only:
        print(first_calls(args.only))
        return
    start(args.threads, ["kernels", "first forward call s", "first backward call s"])
    for rev, name in ((args.before, args.before), (".", "this checkout")):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            cmd = [sys.executable, __file__, "--before", args.before, "--only", rev, "--threads", str(args.threads)]
            out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
        print(f"| {name} | {out.strip().splitlines()[-1]} |")


if __name__ == "__main__":
    main()

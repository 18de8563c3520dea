"""The CPU scan kernels of an earlier commit against this checkout's, on the same inputs in one run.

    python bench/bench_scan_revisions.py --before eaef114 [--threads 1] [--repeat 3]

The earlier ``spmamba/_scan_cpu.py`` is read with ``git show`` and imported under another name, so both
kernels run in one process on the same arrays, taking turns within each repetition (medians): forward
(saving chunk states, as in training) and backward, in ms, with the speed-up and the largest relative
difference of the outputs and of every gradient. Shapes: Mamba-MIS's first stage at 256² (4 directions,
d_state 8) and SP-Mamba's decoder (8 directions, d_state 16) at two map sizes.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import alternating, parser, start  # noqa: E402
from spmamba import _scan_cpu  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [  # (channel rows = batch x directions x d_inner, length, d_state, directions)
    (4 * 36, 64 * 64, 8, 4),
    (8 * 48, 32 * 32, 16, 8),
    (8 * 192, 16 * 16, 16, 8),
]


def load_revision(rev: str, folder: Path):
    source = subprocess.run(
        ["git", "show", f"{rev}:spmamba/_scan_cpu.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = folder / "scan_cpu_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("scan_cpu_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def inputs(rows: int, length: int, n: int, k: int, rng: np.random.Generator) -> dict:
    f32, d = np.float32, rows // k
    return {
        "u": rng.standard_normal((rows, length)).astype(f32),
        "delta": rng.standard_normal((rows, length)).astype(f32),
        "bias": (0.1 * rng.standard_normal(d)).astype(f32),
        "A": -np.exp(rng.standard_normal((d, n))).astype(f32),
        "Bt": rng.standard_normal((k, length, n)).astype(f32),
        "Ct": rng.standard_normal((k, length, n)).astype(f32),
        "Dv": np.ones(d, f32),
        "dy": rng.standard_normal((rows, length)).astype(f32),
    }


def calls(kernels, x: dict) -> tuple[Callable[[], None], Callable[[], None], list[np.ndarray]]:
    """The forward call (saving chunk states, as in training), the backward call, and the arrays they fill:
    y, du, ddelta, dA, dB, dC, dD, dbias."""
    rows, length = x["u"].shape
    d, n = x["A"].shape
    shared = (x["u"], x["delta"], x["bias"], True, x["A"], x["Bt"], x["Ct"], x["Dv"], d, 1, d)
    # kernels since 2026-12-07 come per state size from kernels(); those before were the module's own
    forward, backward = kernels.kernels(np.float32, n) if hasattr(kernels, "_compile") else kernels.kernels(np.float32)
    names = forward.py_func.__code__.co_varnames
    if "wdt" in names:  # kernels that form the deltas themselves: here each row its own, through a weight of 1
        shared = (x["u"], x["delta"][:, None], np.ones((d, 1), np.float32), False, *shared[2:])
    if "perm" in names:  # kernels since 2026-12-07 read through an order
        shared = (x["u"], np.arange(length)[None], *shared[1:])
    y = np.empty_like(x["u"])
    hs = np.empty((rows, kernels.n_chunks(length), n), np.float32)
    grads = [np.empty_like(x["u"]), np.empty_like(x["u"]), np.zeros((rows, n), np.float32)]
    grads += [np.zeros_like(x["Bt"]), np.zeros_like(x["Ct"]), np.zeros(rows, np.float32), np.zeros(rows, np.float32)]

    def backward_pass() -> None:
        for g in grads[2:]:
            g[:] = 0
        backward(*shared, hs, x["dy"], *grads)

    return (lambda: forward(*shared, y, hs, True)), backward_pass, [y, *grads]


def main() -> None:
    ap = parser(__doc__, repeat=3)
    ap.add_argument("--before", required=True, help="the commit whose kernels to compare against")
    args = ap.parse_args()
    start(
        args.threads,
        ["rows × L, d_state", "kernels", "forward ms", "backward ms", "fwd speed-up", "bwd speed-up", "max rel. diff"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        before = load_revision(args.before, Path(tmp))
        for kernels in (before, _scan_cpu):
            kernels.set_threads(args.threads)
        for rows, length, n, k in SHAPES:
            x = inputs(rows, length, n, k, np.random.default_rng(0))
            (f0, b0, out0), (f1, b1, out1) = calls(before, x), calls(_scan_cpu, x)
            fwd = alternating({"before": f0, "after": f1}, args.repeat)
            bwd = alternating({"before": b0, "after": b1}, args.repeat)
            pairs = zip(out0, out1, strict=True)
            diff = max(float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)) for a, b in pairs)
            shape = f"{rows} × {length}, {n}"
            print(f"| {shape} | {args.before} | {fwd['before']:.1f} | {bwd['before']:.1f} | | | |")
            print(
                f"| {shape} | this checkout | {fwd['after']:.1f} | {bwd['after']:.1f} | "
                f"{fwd['before'] / fwd['after']:.2f}× | {bwd['before'] / bwd['after']:.2f}× | {diff:.1e} |"
            )


if __name__ == "__main__":
    main()

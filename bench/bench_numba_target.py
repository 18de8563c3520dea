"""The numba scan compiled for this CPU against the portable build (``NUMBA_CPU_NAME=generic``), side by side.

The scan kernels are compiled with fast-math for the CPU they run on, so one training command reproduces
bit for bit on the same CPU type but rounds differently on another (docs/ablations/README.md). Compiling
for the generic x86-64 target would make runs agree across machines; this measures what that costs. Numba
fixes its target at import, so each target runs in its own process on the same inputs: the selective scan
alone (one SS2D call of the paper's third decoder stage, forward + backward), the shipped Mamba-MIS network
(``cpu-tiny``, C 18) on one 256x256 image, and its training step at 128x128 (batch 8). The last columns say
how far the generic build's numbers move from this CPU's build: the network's output on one image and the
loss at the fifth training step.

    python bench/bench_numba_target.py [--threads 2] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import parser, start, timeit  # noqa: E402

TARGETS = {"this CPU (numba's default)": None, "generic x86-64": "generic"}


def measure(repeat: int, out: Path) -> dict:
    """This process's timings, with the network's output and training losses saved to ``out`` for comparison."""
    from bench.bench_scan import inputs
    from bench.bench_seg import mis
    from spmamba.seg.train import loss_fn
    from spmamba.ssm import selective_scan_fn
    from spmamba.training import machine_record

    xs = inputs(1024, 256)

    def scan_step():
        y = selective_scan_fn(*xs[:6], delta_bias=xs[6], delta_softplus=True)
        y.sum().backward()

    scan_ms = timeit(scan_step, repeat=repeat, warmup=2)

    torch.manual_seed(0)
    model = mis(256).eval()
    image = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        output = model(image)
        forward_ms = timeit(lambda: model(image), repeat=repeat, warmup=1)

    torch.manual_seed(0)
    net = mis(128).train()
    opt = torch.optim.AdamW(net.parameters(), 2e-3)
    g = torch.Generator().manual_seed(2)
    x, m = torch.rand(8, 3, 128, 128, generator=g), (torch.rand(8, 1, 128, 128, generator=g) > 0.7).float()
    losses = []

    def train_step():
        loss = loss_fn(net(x), m)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())

    for _ in range(5):
        train_step()
    train_ms = timeit(train_step, repeat=max(2, repeat // 2), warmup=0)
    torch.save({"output": output, "losses": torch.tensor(losses[:5], dtype=torch.float64)}, out)
    return {
        "cpu": machine_record()["cpu"],
        "scan_ms": scan_ms,
        "forward_ms": forward_ms,
        "train_img_s": 8 / (train_ms / 1e3),
    }


def main() -> None:
    ap = parser(__doc__, repeat=20)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.repeat, args.child)))
        return
    columns = ["numba target", "CPU name", "scan ms (L 1024, fwd+bwd)", "vs this CPU", "Mamba-MIS ms / 256² image"]
    columns += ["vs this CPU", "train img/s @128", "vs this CPU", "max |Δ output|", "loss at step 5"]
    start(args.threads, columns)
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for label, target in TARGETS.items():
            env = {k: v for k, v in os.environ.items() if k != "NUMBA_CPU_NAME"}
            if target:
                env["NUMBA_CPU_NAME"] = target
            saved = Path(tmp) / f"{target or 'host'}.pt"
            cmd = [sys.executable, __file__, "--child", str(saved), "--threads", str(args.threads)]
            line = subprocess.run(cmd + ["--repeat", str(args.repeat)], env=env, capture_output=True, text=True)
            if line.returncode:
                raise SystemExit(line.stderr)
            r = json.loads(line.stdout.strip().splitlines()[-1])
            values = torch.load(saved)
            base = base or (r, values)
            delta = (values["output"] - base[1]["output"]).abs().max().item()
            print(
                f"| {label} | {r['cpu']} | {r['scan_ms']:.1f} | {r['scan_ms'] / base[0]['scan_ms']:.2f}× | "
                f"{r['forward_ms']:.0f} | {r['forward_ms'] / base[0]['forward_ms']:.2f}× | {r['train_img_s']:.1f} | "
                f"{r['train_img_s'] / base[0]['train_img_s']:.2f}× | {delta:.1e} | {values['losses'][-1]:.10f} |"
            )


if __name__ == "__main__":
    main()

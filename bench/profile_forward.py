"""Where the SP-Mamba forward pass spends its time, by kind of operation, beside the floor.

    python bench/profile_forward.py [--threads 2] [--repeat 5] [--preset paper]

``torch.profiler`` over ``repeat`` forward passes (256x256, batch 1, after two warm-up passes); each operator's
exclusive CPU time is put in one group: the selective scans, the direction layouts (the gathers that read a map
in each direction and put the outputs back), dense convolutions, depthwise convolutions, 1×1 convolutions
(the heads and projections written as convolutions), linear layers and matrix products, normalisation,
element-wise operations, copies, the rest. The groups' shares add up to the profiled total; the wall time and
the floor (the model's FLOPs at the rate of a 2048² matmul timed in turn with the forward passes) are printed
above the table.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import alternating, matmul_run, parser, start  # noqa: E402
from spmamba.model import SPMamba, SPMambaConfig  # noqa: E402
from spmamba.profiling import model_cost  # noqa: E402

ELEMENTWISE = ("add", "mul", "sub", "div", "silu", "softplus", "exp", "sigmoid", "relu", "gelu", "clamp", "neg")
ELEMENTWISE += ("sqrt", "rsqrt", "pow", "softmax", "mean", "sum", "amax", "max", "hardswish", "hardsigmoid")


def group(name: str, shapes: list) -> str:
    """The kind of operation an operator's row belongs to (``shapes``: its input shapes)."""
    op = name.removeprefix("aten::")
    if "scan" in name.lower():
        return "selective scan"
    if op in ("gather", "scatter", "scatter_add", "index_select", "index", "take_along_dim"):
        return "direction layout (gathers)"
    if "conv" in op:
        weight = shapes[1] if len(shapes) > 1 and shapes[1] else []
        if len(weight) == 4 and weight[1] == 1 and weight[0] > 1:
            return "depthwise convolution"
        if len(weight) == 4 and weight[2:] == [1, 1]:
            return "1×1 convolution"
        return "dense convolution"
    if op in ("mm", "bmm", "addmm", "matmul", "linear", "einsum", "baddbmm"):
        return "linear / matrix product"
    if "norm" in op:
        return "normalisation"
    if op.rstrip("_") in ELEMENTWISE or op.startswith(ELEMENTWISE):
        return "element-wise"
    if op in ("copy_", "contiguous", "cat", "stack", "clone", "to", "_to_copy", "flip", "permute", "transpose"):
        return "copies and layout"
    return "other"


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--preset", default="paper")
    args = ap.parse_args()
    start(args.threads, ["group", "ms / image", "share"])
    torch.manual_seed(0)
    model = SPMamba(SPMambaConfig.preset(args.preset), encoder_weights=None).eval()  # weights do not change speed
    x = torch.rand(1, 3, 256, 256)
    matmul, gflops = matmul_run()
    with torch.no_grad():
        ms = alternating({"model": lambda: model(x), "matmul": matmul}, args.repeat)
        wall, floor = ms["model"], 2 * model_cost(model).gmacs / gflops(ms["matmul"]) * 1e3
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(args.repeat):
                model(x)
    totals: dict[str, float] = defaultdict(float)
    for row in prof.key_averages(group_by_input_shape=True):
        totals[group(row.key, row.input_shapes)] += row.self_cpu_time_total / 1e3 / args.repeat
    profiled = sum(totals.values())
    for name, ms in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {ms:.0f} | {100 * ms / profiled:.0f}% |")
    print(
        f"\n{args.preset}: wall {wall:.0f} ms per image (profiled {profiled:.0f} ms, the profiler's own cost "
        f"included), floor {floor:.0f} ms, wall / floor {wall / floor:.1f}"
    )


if __name__ == "__main__":
    main()

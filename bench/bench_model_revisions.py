"""This checkout's models against an earlier commit's, whole, on the same weights and inputs, in one run.

    python bench/bench_model_revisions.py --before REV [--threads 2] [--repeat 7]

REV's ``spmamba`` package is written out with ``git archive`` into a temporary folder and imported under another
name, so a change anywhere on the model's path (the scan kernels, their interface, the layers that call them) is
timed on whole models, where ``bench_scan_revisions.py`` times the kernels alone and needs their interface
unchanged. Rows: SP-Mamba ``paper`` and ``paper-lite0`` forward per 256² image, with the floor (this checkout's
count of the model's FLOPs at the matmul rate of a 2048² product timed in turn with the two models); a
``cpu-lite0`` training step at 128² (batch 8, cached features: forward, loss, backward, AdamW); Mamba-MIS per
256² image with the U-Net beside it. REV's model of each pair loads this checkout's weights; the two take turns
within each repetition so that drift in machine speed hits both alike (medians), and the largest relative
difference of their outputs is printed.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_directions import mis_row, training_step  # noqa: E402
from bench.common import alternating, matmul_run, parser, start  # noqa: E402
from spmamba import model as our_model  # noqa: E402
from spmamba.profiling import model_cost  # noqa: E402
from spmamba.seg import mamba_mis as our_mis  # noqa: E402
from spmamba.seg.unet import UNet, UNetConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_package(rev: str, folder: Path) -> ModuleType:
    """Commit ``rev``'s ``spmamba`` package, importable beside this checkout's (its model code imports relatively)."""
    archive = subprocess.run(["git", "archive", rev, "spmamba"], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    name = "spmamba_" + re.sub(r"\W", "_", rev)
    package = (folder / "spmamba").rename(folder / name)
    spec = importlib.util.spec_from_file_location(
        name, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def pair(build: Callable[[ModuleType | None], torch.nn.Module], before: ModuleType) -> tuple:
    """(REV's model, this checkout's), the same weights in both."""
    torch.manual_seed(0)
    ours = build(None)
    theirs = build(before)
    theirs.load_state_dict(ours.state_dict())
    return theirs, ours


def tensors(out: object) -> list[torch.Tensor]:
    """Every tensor of a model's output (a tensor, a sequence, or a dataclass of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    items = out if isinstance(out, (list, tuple)) else [getattr(out, f.name) for f in dataclasses.fields(out)]
    return [t for item in items for t in tensors(item)]


def rel_diff(a: object, b: object) -> float:
    """The largest difference between two outputs' tensors, relative to the largest magnitude in each."""
    pairs = zip(tensors(a), tensors(b), strict=True)
    return max(((x - y).abs().max() / y.abs().max().clamp_min(1e-30)).item() for x, y in pairs)


def forward_times(models: dict[str, Callable], x: torch.Tensor, repeat: int) -> tuple[dict, float]:
    """Each model's median forward ms (in turn within each repetition; a "matmul" entry runs as it is) and the
    largest relative difference between the first two models' outputs."""
    runs = {name: fn if name == "matmul" else functools.partial(fn, x) for name, fn in models.items()}
    with torch.no_grad():
        ms = alternating(runs, repeat)
        before, after = list(models.values())[:2]
        return ms, rel_diff(before(x), after(x))


def main() -> None:
    ap = parser(__doc__, repeat=7)
    ap.add_argument("--before", required=True, help="the commit whose models to time against this checkout's")
    args = ap.parse_args()
    columns = ["measurement", f"{args.before} ms", "this checkout ms", "speed-up", "beside it", "ratio to it"]
    start(args.threads, [*columns, "max rel. diff"])
    with tempfile.TemporaryDirectory() as tmp:
        old = load_package(args.before, Path(tmp))
        importlib.import_module(f"{old.__name__}.model")
        importlib.import_module(f"{old.__name__}.seg.mamba_mis")

        def sp_mamba(preset: str) -> Callable[[ModuleType | None], torch.nn.Module]:
            def build(pkg: ModuleType | None) -> torch.nn.Module:
                model = pkg.model if pkg else our_model
                return model.SPMamba(model.SPMambaConfig.preset(preset), encoder_weights=None)

            return build

        x = torch.rand(1, 3, 256, 256)
        matmul, gflops = matmul_run()
        for preset in ("paper", "paper-lite0"):
            theirs, ours = (m.eval() for m in pair(sp_mamba(preset), old))
            ms, diff = forward_times({"before": theirs, "after": ours, "matmul": matmul}, x, args.repeat)
            rate = gflops(ms["matmul"])  # timed in turn with the two models
            floor = 2 * model_cost(ours).gmacs / rate * 1e3
            b, a = ms["before"], ms["after"]
            print(
                f"| SP-Mamba `{preset}` forward, 256² | {b:.0f} | {a:.0f} | {b / a:.2f}× | floor {floor:.0f} ms "
                f"({rate:.0f} GFLOP/s) | {b / floor:.1f}× → {a / floor:.1f}× | {diff:.1e} |"
            )
        theirs, ours = (m.train() for m in pair(sp_mamba("cpu-lite0"), old))
        steps = {"before": training_step(theirs, 128), "after": training_step(ours, 128)}
        ms = alternating(steps, args.repeat)
        b, a = ms["before"], ms["after"]
        print(f"| SP-Mamba `cpu-lite0` training step, 8 × 128² | {b:.0f} | {a:.0f} | {b / a:.2f}× | | | |")

        def mis(pkg: ModuleType | None) -> torch.nn.Module:
            seg = pkg.seg.mamba_mis if pkg else our_mis
            return seg.MambaMIS(seg.MambaMISConfig.preset("cpu-tiny", image_size=256, channels=18))

        theirs, ours = (m.eval() for m in pair(mis, old))
        unet = UNet(UNetConfig(image_size=256)).eval()
        ms, diff = forward_times({"before": theirs, "after": ours, "unet": unet}, x, args.repeat)
        print(mis_row(ms["before"], ms["after"], ms["unet"], f"{diff:.1e}"))


if __name__ == "__main__":
    main()

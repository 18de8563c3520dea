"""A 40-slice 256x256 volume scored as one volume against the same 40 slices as 40 single-image analyses.

Both in this process, with the same checkpoint: the volume path (load once, network in batches of 8,
rescore all) and the Analyse tab's path once per slice (load, network on one image, render).

    python bench/bench_volume.py [--threads 2] [--repeat 3] [--checkpoint weights/....safetensors]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import parser, start  # noqa: E402
from spmamba.demo import handlers  # noqa: E402
from spmamba.pipeline import get_predictor  # noqa: E402
from spmamba.volume import load_volume, volume_maps, volume_report, volume_scores  # noqa: E402
from spmamba.zoo import WEIGHTS_DIR  # noqa: E402


def main() -> None:
    ap = parser(__doc__, repeat=3)
    ap.add_argument("--checkpoint", default=str(WEIGHTS_DIR / "zhanglab-efficientnet_lite0.safetensors"))
    ap.add_argument("--slices", type=int, default=40)
    args = ap.parse_args()
    start(args.threads, ["checkpoint", "slices", "one volume (s)", "slices one by one (s)", "speed-up"])
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.nii.gz"
        nib.save(nib.Nifti1Image(rng.random((256, 256, args.slices)).astype(np.float32), np.eye(4)), path)
        predictor = get_predictor(args.checkpoint)
        volume_maps(predictor, load_volume([path]))  # warm: numba kernels, first calls

        def as_volume():
            v = load_volume([path])
            volume_report(predictor, v, volume_scores(predictor, v))

        def one_by_one():
            for i in range(args.slices):
                a = handlers.analyse(str(path), args.checkpoint, handlers.ImageOptions(index=i, axis=2))
                handlers.render(a, a.weights)

        timings = {}
        for name, fn in (("volume", as_volume), ("single", one_by_one)):
            runs = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - t)
            timings[name] = float(np.median(runs))
    print(
        f"| {Path(args.checkpoint).stem} | {args.slices} | {timings['volume']:.1f} | {timings['single']:.1f} | "
        f"{timings['single'] / timings['volume']:.2f}× |"
    )


if __name__ == "__main__":
    main()

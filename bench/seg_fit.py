"""How well each segmentation checkpoint fits its own training images, beside its validation images.

    python bench/seg_fit.py weights/busi-mambamis-tiny128.safetensors weights/busi-unet128.safetensors

Tells underfitting (training Dice barely above validation: more epochs or capacity may help) from a
generalisation gap (training Dice well above validation: regularisation or data may help) before a
long run is spent on either. The split is rebuilt from the checkpoint's recorded seed and validation share
and checked against its recorded validation images. Dice is at the model's input size, as in training's
per-epoch figure, on unaugmented images; intervals are bootstrap 95%, resampling patients where file names
carry them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from spmamba.data import data_root  # noqa: E402
from spmamba.seg.checkpoint import load_seg_checkpoint  # noqa: E402
from spmamba.seg.data import load_pairs, split_pairs  # noqa: E402
from spmamba.seg.train import dice_per_image, mean_interval, resampling_units  # noqa: E402


def fit_line(path: Path, root: Path, batch: int = 16) -> str:
    model, meta = load_seg_checkpoint(path)
    training = meta["training"]
    options = training["options"]
    split = split_pairs(root / training["data_path_name"], options.get("val_fraction", 0.2), options.get("seed", 0))
    if sorted(img.name for img, _ in split.val) != sorted(training["val_images"]):
        raise SystemExit(f"{path.name}: the data under {root} no longer gives the split it was trained on")
    cfg = model.config
    cells = []
    for part, pairs in (("train", split.train), ("validation", split.val)):
        dice = np.array(dice_per_image(model, *load_pairs(pairs, cfg.image_size, cfg.intensity), batch))
        lo, hi = mean_interval(dice, resampling_units([img.name for img, _ in pairs]))
        cells.append(f"{part} {dice.mean():.3f} ({lo:.3f}–{hi:.3f}, {len(pairs)} images)")
    return f"{path.name}: Dice " + "; ".join(cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=None, help="data folder (default: $SPMAMBA_DATA or ../shared/data)")
    args = ap.parse_args()
    root = data_root(args.data)
    if root is None:
        raise SystemExit("no data folder: pass --data or set SPMAMBA_DATA")
    for path in args.checkpoints:
        print(fit_line(path, root), flush=True)


if __name__ == "__main__":
    main()

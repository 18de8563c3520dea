"""The README's segmentation validation table, written from the checkpoints' own metadata.

    python bench/seg_table.py weights/ph2-mambamis-tiny128.safetensors weights/ph2-unet128.safetensors ...

One row per checkpoint: dataset, network (with its ablation switches and input size), parameters, multiply-adds per
image at its training size, training wall time, best epoch, and validation Dice/IoU/HD95 with bootstrap
95% intervals. Then, per dataset, each network's Dice gain over the U-Net, and each ablation's over the
full Mamba-MIS, on the same images with a paired bootstrap interval (resampling patients where file
names carry them). Nothing is typed by hand, so the table cannot disagree with the files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from spmamba.card import seg_network_name  # noqa: E402
from spmamba.profiling import forward_macs  # noqa: E402
from spmamba.seg.checkpoint import load_seg_checkpoint  # noqa: E402
from spmamba.seg.train import mean_interval, resampling_units  # noqa: E402


def _name(meta: dict) -> str:
    """The network and its input size: the same network is shipped at more than one size."""
    size = meta["config"]["image_size"]
    return f"{seg_network_name(meta)}, {size}×{size}"


def row(path: Path) -> str:
    model, meta = load_seg_checkpoint(path)
    t, v = meta["training"], meta["metrics"]["validation"]
    size = meta["config"]["image_size"]
    macs = sum(forward_macs(model, torch.rand(1, 3, size, size)))
    cells = [
        t["data_path_name"],
        _name(meta),
        f"{t['parameters'] / 1e6:.2f}",
        f"{macs / 1e9:.2f}",
        f"{t['train_seconds'] / 60:.0f} ({t['epochs']} ep.)",
        str(t["best_epoch"]),
        f"**{v['dice']:.3f}** ({v['dice_ci95'][0]:.3f}–{v['dice_ci95'][1]:.3f})",
        f"{v['iou']:.3f} ({v['iou_ci95'][0]:.3f}–{v['iou_ci95'][1]:.3f})",
        f"{v['hd95']:.1f} ({v['hd95_ci95'][0]:.1f}–{v['hd95_ci95'][1]:.1f})",
        str(v["n"]),
    ]
    return "| " + " | ".join(cells) + " |"


def _is_full_mamba_mis(meta: dict) -> bool:
    cfg = meta["config"]
    return meta["model"] == "mamba-mis" and cfg["bfss_directions"] == 4 and cfg["spectral_gate"] and cfg["bridge"]


def _against_full(meta: dict, size: int) -> bool:
    """Compared with the full Mamba-MIS at ``size``: an ablation at the same size, or the full network at a
    larger one (what the input size alone changes)."""
    other = meta["config"]["image_size"]
    return other > size if _is_full_mamba_mis(meta) else other == size


def paired_gains(paths: list[Path]) -> list[str]:
    """Per dataset, each network's mean Dice minus the U-Net's on the same validation images, and each
    ablation's (or larger input's) minus the full Mamba-MIS's, with a paired bootstrap 95% interval
    (resampling patients where file names carry them, else images): whether a difference is more than
    the split's chance."""
    metas = [load_seg_checkpoint(p)[1] for p in paths]
    lines = []
    for base in (m for m in metas if m["model"] == "unet" or _is_full_mamba_mis(m)):
        data = base["training"]["data_path_name"]
        ref = {r["image"]: r["dice"] for r in base["metrics"]["per_image"]}
        size = base["config"]["image_size"]
        compared = [
            m
            for m in metas
            if m is not base
            and m["training"]["data_path_name"] == data
            and (base["model"] == "unet" or (m["model"] == "mamba-mis" and _against_full(m, size)))
        ]
        for other in compared:
            rows = other["metrics"]["per_image"]
            if {r["image"] for r in rows} != set(ref):
                lines.append(f"{data}: {_name(other)} was validated on other images; no paired gain")
                continue
            diff = np.array([r["dice"] - ref[r["image"]] for r in rows])
            units = resampling_units([r["image"] for r in rows])
            lo, hi = mean_interval(diff, units)
            unit = "patients" if len(units) < len(diff) else "images"
            lines.append(
                f"{data}: {_name(other)} − {_name(base)}, mean Dice {diff.mean():+.3f} "
                f"(95% CI {lo:+.3f} to {hi:+.3f}, {len(diff)} images, resampling {len(units)} {unit})"
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path)
    args = ap.parse_args()
    print(
        "| data | network | params (M) | GMACs / image at the training size | train min (epochs) | best epoch "
        "| Dice (95% CI) | IoU (95% CI) | HD95 px (95% CI) | val images |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in args.checkpoints:
        print(row(path))
    print()
    for line in paired_gains(args.checkpoints):
        print(f"- {line}")


if __name__ == "__main__":
    main()

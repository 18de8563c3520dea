"""The README's segmentation validation table, written from the checkpoints' own metadata.

    python bench/seg_table.py weights/ph2-mambamis-tiny128.safetensors weights/ph2-unet128.safetensors ...

One row per checkpoint: dataset, network (with its ablation switches and input size), parameters, multiply-adds per
image at its training size, training wall time, the epoch kept (last, or best by validation), and validation
Dice/IoU/HD95 with bootstrap 95% intervals. Then, per dataset and seed (a seed is a split), each network's Dice
gain over the U-Net, and each ablation's over the full Mamba-MIS, on the same images with a paired bootstrap interval
(resampling patients where file names carry them). Last, where the data folder is here, each split's
validation images that have a near-identical image in training, and the Dice without them. Nothing is
typed by hand, so the table cannot disagree with the files.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from spmamba.card import default_seg_recipe, seg_network_name, seg_recipe  # noqa: E402
from spmamba.data import data_root, segmentation_pairs  # noqa: E402
from spmamba.datacheck import NEAR_DUPLICATE_R, near_duplicate_pairs, thumbnail_signature  # noqa: E402
from spmamba.imaging import load_image  # noqa: E402
from spmamba.profiling import forward_macs  # noqa: E402
from spmamba.seg.checkpoint import load_seg_checkpoint, parse_config  # noqa: E402
from spmamba.seg.data import stored_keep, stored_kept_epoch  # noqa: E402
from spmamba.seg.mamba_mis import stored_stem  # noqa: E402
from spmamba.seg.train import mean_interval, resampling_units  # noqa: E402


def _seed(meta: dict) -> int:
    return meta["training"]["options"].get("seed", 0)


def _epochs(meta: dict) -> int:
    return meta["training"]["epochs"]


def _network(meta: dict) -> str:
    """The network, its input size and its epochs (the same network is trained at more than one of each)."""
    size = meta["config"]["image_size"]
    return f"{seg_network_name(meta)}, {size}×{size}, {_epochs(meta)} ep."


def _name(meta: dict) -> str:
    """``_network`` and the seed where not the default one (a replicate on another split)."""
    return f"{_network(meta)}, seed {_seed(meta)}" if _seed(meta) else _network(meta)


def row(model: torch.nn.Module, meta: dict) -> str:
    t, v = meta["training"], meta["metrics"]["validation"]
    size = meta["config"]["image_size"]
    macs = sum(forward_macs(model, torch.rand(1, 3, size, size)))
    cells = [
        t["data_path_name"],
        _name(meta),
        f"{t['parameters'] / 1e6:.2f}",
        f"{macs / 1e9:.2f}",
        f"{t['train_seconds'] / 60:.0f} ({t['epochs']} ep.)",
        f"{stored_kept_epoch(t)} ({stored_keep(t['options'])})",
        f"**{v['dice']:.3f}** ({v['dice_ci95'][0]:.3f}–{v['dice_ci95'][1]:.3f})",
        f"{v['iou']:.3f} ({v['iou_ci95'][0]:.3f}–{v['iou_ci95'][1]:.3f})",
        f"{v['hd95']:.1f} ({v['hd95_ci95'][0]:.1f}–{v['hd95_ci95'][1]:.1f})",
        str(v["n"]),
    ]
    return "| " + " | ".join(cells) + " |"


def _is_full_mamba_mis(meta: dict) -> bool:
    """Every part of Mamba-MIS switched on and none of our additions (detail branch, channel MLP), with either
    stem."""
    cfg = meta["config"]
    return (
        meta["model"] == "mamba-mis"
        and cfg["bfss_directions"] == 4
        and cfg["spectral_gate"]
        and cfg["bridge"]
        and not cfg.get("detail_branch")
        and not cfg.get("mlp_ratio")
    )


def _recipe(meta: dict) -> tuple:
    """How a network was fed and trained: ``seg_recipe`` and the number of epochs (which has no default:
    each dataset's command sets it)."""
    return (*seg_recipe(meta), _epochs(meta))


def _other_recipe(meta: dict, base: dict) -> bool:
    """``meta`` is ``base``'s network, all else equal, fed or trained otherwise in exactly one way: percentile-
    scaled input, left-right flips only or another learning rate where ``base`` had the default, or a longer
    schedule than ``base``'s."""
    if meta["model"] != base["model"]:
        return False
    network, base_network = (
        dataclasses.replace(parse_config(m["model"], m["config"]), intensity="raw") for m in (meta, base)
    )
    changed = [i for i, (a, b) in enumerate(zip(_recipe(meta), _recipe(base), strict=True)) if a != b]
    if network != base_network or len(changed) != 1:
        return False
    (i,) = changed
    defaults = default_seg_recipe()
    return _epochs(meta) > _epochs(base) if i == len(defaults) else _recipe(base)[i] == defaults[i]


def _compared(meta: dict, base: dict) -> bool:
    """Paired with ``base`` (a U-Net or a full Mamba-MIS): networks with the same recipe and schedule, as
    ``_against_full`` allows for a Mamba-MIS base, and the same network with one thing in its recipe changed."""
    if _recipe(meta) != _recipe(base):
        return _other_recipe(meta, base)
    return base["model"] == "unet" or (meta["model"] == "mamba-mis" and _against_full(meta, base))


def _against_full(meta: dict, base: dict) -> bool:
    """Compared with the full Mamba-MIS ``base``: an ablation or addition of the same preset, width, stem and
    size; the full network made larger in one way, in input size, in width (same preset) or in preset (same
    input), with the same stem; or the conv stem against the patch stem, all else equal."""
    same_preset = meta["training"]["options"].get("config") == base["training"]["options"].get("config")
    size, base_size = meta["config"]["image_size"], base["config"]["image_size"]
    width, base_width = meta["config"]["channels"], base["config"]["channels"]
    stems = stored_stem(meta["config"]), stored_stem(base["config"])
    same = same_preset and size == base_size and width == base_width
    if stems[0] != stems[1]:
        return _is_full_mamba_mis(meta) and same and stems == ("conv", "patch")
    if _is_full_mamba_mis(meta):
        larger_preset = meta["training"]["parameters"] > base["training"]["parameters"]
        wider = same_preset and size == base_size and width > base_width
        taller = same_preset and width == base_width and size > base_size
        return taller or wider or (size == base_size and not same_preset and larger_preset)
    return same


def _pairs(metas: list[dict]) -> Iterator[tuple[dict, dict]]:
    """(other, base) for every network paired with a U-Net or full Mamba-MIS ``base`` on its dataset and split."""
    for base in (m for m in metas if m["model"] == "unet" or _is_full_mamba_mis(m)):
        data = base["training"]["data_path_name"]
        for other in metas:
            if (
                other is not base
                and other["training"]["data_path_name"] == data
                and _seed(other) == _seed(base)
                and _compared(other, base)
            ):
                yield other, base


def paired_gains(metas: list[dict]) -> list[str]:
    """Per dataset, each network's mean Dice minus the U-Net's on the same validation images, and each
    ablation's (or larger network's) minus the full Mamba-MIS's, with a paired bootstrap 95% interval
    (resampling patients where file names carry them, else images): whether a difference is more than
    the split's chance."""
    lines = []
    for other, base in _pairs(metas):
        data = base["training"]["data_path_name"]
        ref = {r["image"]: r["dice"] for r in base["metrics"]["per_image"]}
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


def across_splits(metas: list[dict]) -> list[str]:
    """Per dataset, the Mamba-MIS − U-Net difference in mean Dice for a pair trained the same way on more than
    one split, averaged over the splits: steadier than any one split's, though the splits overlap, so no
    interval is claimed for it."""
    gaps: dict[tuple[str, str, str], dict[int, float]] = {}
    for other, base in _pairs(metas):
        if base["model"] == "unet" and other["model"] == "mamba-mis" and _recipe(other) == _recipe(base):
            key = (base["training"]["data_path_name"], _network(other), _network(base))
            gaps.setdefault(key, {})[_seed(base)] = (
                other["metrics"]["validation"]["dice"] - base["metrics"]["validation"]["dice"]
            )
    lines = []
    for (data, network, unet), by_seed in gaps.items():
        if len(by_seed) > 1:
            each = ", ".join(f"seed {seed} {gap:+.3f}" for seed, gap in sorted(by_seed.items()))
            lines.append(
                f"{data}: {network} − {unet}, mean over {len(by_seed)} splits {np.mean(list(by_seed.values())):+.3f} "
                f"({each})"
            )
    return lines


def without_near_duplicates(metas: list[dict], root: Path) -> list[str]:
    """Per dataset and split, how many validation images have a near-identical image on the training side (the split
    keeps only identical ones apart), and each checkpoint's mean Dice on the others: how much validation
    could be flattered by them."""
    lines = []
    for data in dict.fromkeys(m["training"]["data_path_name"] for m in metas):
        if not (root / data / "images").is_dir():
            lines.append(f"{data}: no data folder under {root}; near-identical images not checked")
            continue
        images = [img for img, _ in segmentation_pairs(root / data)]
        signatures = np.stack([thumbnail_signature(load_image(p).grey) for p in images])
        splits: dict[frozenset, list[dict]] = {}
        for m in metas:
            if m["training"]["data_path_name"] == data:
                splits.setdefault(frozenset(r["image"] for r in m["metrics"]["per_image"]), []).append(m)
        for val, group in splits.items():
            is_val = np.array([p.name in val for p in images])
            near = {
                images[np.flatnonzero(is_val)[i]].name
                for i, _, _ in near_duplicate_pairs(signatures[is_val], signatures[~is_val], NEAR_DUPLICATE_R)
            }
            parts = []
            for m in group:
                rows = [r for r in m["metrics"]["per_image"] if r["image"] not in near]
                dice = np.array([r["dice"] for r in rows])
                lo, hi = mean_interval(dice, resampling_units([r["image"] for r in rows]))
                parts.append(f"{_name(m)} {dice.mean():.3f} ({lo:.3f}–{hi:.3f})")
            seed = f" (seed {_seed(group[0])})" if _seed(group[0]) else ""
            lines.append(
                f"{data}{seed}: {len(near)} of {len(val)} validation images have a near-identical training image "
                f"(thumbnails correlate at r ≥ {NEAR_DUPLICATE_R}); Dice on the other {len(val) - len(near)}: "
                + "; ".join(parts)
            )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=None, help="data folder (default: $SPMAMBA_DATA or ../shared/data)")
    args = ap.parse_args()
    print(
        "| data | network | params (M) | GMACs / image at the training size | train min (epochs) | epoch kept "
        "| Dice (95% CI) | IoU (95% CI) | HD95 px (95% CI) | val images |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    loaded = [load_seg_checkpoint(p) for p in args.checkpoints]
    for model, meta in loaded:
        print(row(model, meta))
    print()
    metas = [meta for _, meta in loaded]
    for line in paired_gains(metas) + across_splits(metas):
        print(f"- {line}")
    root = data_root(args.data)
    if root is not None:
        print()
        for line in without_near_duplicates(metas, root):
            print(f"- {line}")


if __name__ == "__main__":
    main()

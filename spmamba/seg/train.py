"""``spmamba seg train``: supervised training of Mamba-MIS or the U-Net baseline on images/ + masks/.

BCE + soft Dice, AdamW with a cosine schedule, flips/rotations/intensity jitter; the checkpoint holds the last
epoch's weights (or, on request, the epoch with the best validation Dice); resumable from a train-state file beside
the output (no pickles).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checkpoint import CheckpointError
from ..data import patient_id
from ..intensity import INTENSITY
from ..metrics import bootstrap_interval
from ..training import end_epoch, load_state, machine_record, opt_field, run_paths, save_state, seed_everything
from .checkpoint import MODELS, build_model, load_seg_checkpoint, save_seg_checkpoint
from .data import AUGMENT, DEFAULT_THRESHOLD, KEEP, MASK_LEVEL, augment, load_pairs, split_pairs
from .inference import Segmenter
from .mamba_mis import SEG_PRESETS, STEMS
from .unet import UNetConfig


@dataclass
class SegTrainOptions:
    """Every segmentation training option; ``spmamba seg train`` is generated from this."""

    data: str = opt_field(None, "folder with images/ and masks/ (same file names)")
    out: str = opt_field(None, "checkpoint to write (.safetensors)")
    model: str = opt_field("mamba-mis", "network to train", choices=sorted(MODELS))
    config: str = opt_field(
        "cpu-tiny", "Mamba-MIS preset (the U-Net takes its width from --channels)", choices=sorted(SEG_PRESETS)
    )
    image_size: int = opt_field(256, "square input size")
    channels: int | None = opt_field(None, "base width C (default: the preset's; U-Net 9)")
    bfss_directions: int | None = opt_field(None, "ablation: 1 = a single raster scan instead of BFSS's 4 directions")
    spectral_gate: bool = opt_field(True, "spectral-gate sub-blocks")
    bridge: bool = opt_field(True, "the AMFFB bridge on the skip connections")
    mlp_ratio: int | None = opt_field(
        None, "hidden width / C of a channel MLP in each block, 0 = none (default: the preset's)"
    )
    detail_branch: bool = opt_field(False, "a full-resolution 3x3 conv branch from the image before the head (ours)")
    stem: str | None = opt_field(
        None,
        "patch: 4x4 patch embedding; conv: U-Net levels at full and half resolution (ours; default: the preset's)",
        choices=list(STEMS),
    )
    intensity: str = opt_field(
        "raw",
        "input scaling (spmamba.intensity): raw, or e.g. percentile (each image divided by its 99.9th percentile; "
        "for MR, whose intensities have no absolute scale)",
        choices=list(INTENSITY),
    )
    augment: str = opt_field(
        "dihedral",
        "orientations drawn in training: dihedral (all flips and quarter turns), or horizontal (left-right mirror "
        "only, for ultrasound, whose vertical axis is depth)",
        choices=list(AUGMENT),
    )
    # spelt: a card's command names it even at the default, since each dataset's command sets its own schedule
    epochs: int = opt_field(60, "training epochs", spelt=True)
    keep: str = opt_field(
        "last",
        "the epoch whose weights the checkpoint holds: last (fixed before training, so validation measures it "
        "without bias), or best (the best validation Dice of any epoch, which validation then overstates)",
        choices=list(KEEP),
    )
    batch_size: int = opt_field(8, "images per step")
    lr: float = opt_field(2e-3, "peak learning rate (cosine decay to a hundredth of it)")
    weight_decay: float = opt_field(1e-2, "AdamW weight decay")
    val_fraction: float = opt_field(0.2, "share of patients/images held out for validation")
    seed: int = opt_field(0, "seed for the split, initialisation, order and augmentation")
    resume: bool = opt_field(False, "continue from OUT's .train-state file")
    dataset_name: str | None = opt_field(None, "name recorded in the model card metadata")
    modalities: tuple[str, ...] = opt_field(
        (), "DICOM Modality codes of the images (the demo preselects by them)", flag="--modality"
    )


def build(opts: SegTrainOptions) -> torch.nn.Module:
    if opts.model == "unet":
        return build_model(
            "unet",
            {
                "image_size": opts.image_size,
                "channels": opts.channels or UNetConfig.channels,
                "intensity": opts.intensity,
            },
        )
    cfg = dataclasses.asdict(SEG_PRESETS[opts.config])
    cfg.update(
        image_size=opts.image_size,
        spectral_gate=opts.spectral_gate,
        bridge=opts.bridge,
        detail_branch=opts.detail_branch,
        intensity=opts.intensity,
    )
    if opts.stem:
        cfg["stem"] = opts.stem
    if opts.channels:
        cfg["channels"] = opts.channels
    if opts.bfss_directions:
        cfg["bfss_directions"] = opts.bfss_directions
    if opts.mlp_ratio is not None:
        cfg["mlp_ratio"] = opts.mlp_ratio
    return build_model("mamba-mis", cfg)


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy + (1 - soft Dice), the usual pair for lesions that fill little of the image."""
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum((1, 2, 3))
    soft_dice = (2 * inter + 1) / (prob.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return F.binary_cross_entropy_with_logits(logits, target) + (1 - soft_dice).mean()


@torch.no_grad()
def dice_per_image(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor, batch: int) -> list[float]:
    """Dice of each image at the model's resolution (the final figures are at each image's own); an image with
    neither a lesion nor a prediction scores 1."""
    model.eval()
    scores = []
    for i in range(0, len(images), batch):
        pred = model(images[i : i + batch]) > 0
        truth = masks[i : i + batch] > MASK_LEVEL
        inter = (pred & truth).sum((1, 2, 3)).float()
        total = (pred.sum((1, 2, 3)) + truth.sum((1, 2, 3))).float()
        scores += torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.ones_like(total)).tolist()
    return scores


def resampling_units(names: list[str]) -> list[np.ndarray]:
    """Indices of ``names`` grouped by patient where the file name carries one, else one per image: the
    unit a bootstrap over validation images resamples."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(patient_id(name) or name, []).append(i)
    return [np.array(g) for g in groups.values()]


def mean_interval(values: np.ndarray, units: list[np.ndarray]) -> tuple[float, float]:
    """Bootstrap 95% interval of the mean of ``values``, resampling ``units`` (groups of indices)."""
    return bootstrap_interval(lambda idx: float(values[np.concatenate([units[j] for j in idx])].mean()), len(units))


def summarise(rows: list[dict]) -> dict:
    """Means of the per-image figures with bootstrap 95% intervals. The resampling unit is the patient
    where file names carry one (a patient's slices are alike, so resampling slices would make the
    interval too narrow), else the image."""
    members = resampling_units([r["image"] for r in rows])
    out = {"n": len(rows), "groups": len(members), "resampled": "patients" if len(members) < len(rows) else "images"}
    for key in ("dice", "iou", "hd95"):
        vals = np.array([r[key] for r in rows], float)
        out[key] = float(vals.mean())
        out[f"{key}_ci95"] = list(mean_interval(vals, members))
    return out


def train_seg(opts: SegTrainOptions) -> dict:
    seed_everything(opts.seed)
    out, state_path, best_path = run_paths(opts.out)
    split = split_pairs(opts.data, opts.val_fraction, opts.seed)
    model = build(opts)
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=opts.epochs, eta_min=opts.lr / 100)
    info = {"epoch": 0, "history": [], "best_dice": -1.0, "best_epoch": 0, "train_seconds": 0.0}
    if opts.resume and state_path.is_file():
        info = load_state(state_path, model, opt, sched)
    if opts.keep == "best" and info["epoch"] and not best_path.is_file():
        raise CheckpointError(
            f"{state_path.name} is from a run that kept its last epoch, so no best epoch was saved; "
            "resume it with --keep last"
        )
    images, masks = load_pairs(split.train, opts.image_size, opts.intensity)
    val_images, val_masks = load_pairs(split.val, opts.image_size, opts.intensity)
    gen = torch.Generator().manual_seed(opts.seed + info["epoch"])
    for epoch in range(info["epoch"] + 1, opts.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(images), generator=gen)
        losses = []
        bar = tqdm(range(0, len(order), opts.batch_size), desc=f"epoch {epoch}/{opts.epochs}", leave=False)
        for i in bar:
            idx = order[i : i + opts.batch_size]
            x, m = augment(images[idx], masks[idx], gen, opts.augment)
            loss = loss_fn(model(x), m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        record = end_epoch(sched, info, epoch, losses, len(images), t0)
        record["val_dice"] = float(np.mean(dice_per_image(model, val_images, val_masks, opts.batch_size)))
        if record["val_dice"] > info["best_dice"]:
            info["best_dice"], info["best_epoch"] = record["val_dice"], epoch
            if opts.keep == "best":
                save_seg_checkpoint(best_path, model, summary="best epoch so far")
        info["history"].append(record)
        info["epoch"] = epoch
        tqdm.write(json.dumps(record))
        save_state(state_path, model, opt, sched, info)

    if opts.keep == "best":
        model, _ = load_seg_checkpoint(best_path)
    segmenter = Segmenter(model)
    rows = [{"image": img.name, **segmenter.scores(img, mask)} for img, mask in split.val]
    validation = summarise(rows)
    name = opts.dataset_name or Path(opts.data).name
    training = {
        "dataset": name,
        "data_path_name": Path(opts.data).name,
        "split": split.rule,
        "train_images": len(split.train),
        "val_images": [img.name for img, _ in split.val],
        "epochs": opts.epochs,
        "best_epoch": info["best_epoch"],
        "kept_epoch": info["best_epoch"] if opts.keep == "best" else info["epoch"],
        "train_seconds": round(info["train_seconds"], 1),
        **machine_record(),
        "history": info["history"],
        "options": dataclasses.asdict(opts),
        "modalities": [m.upper() for m in opts.modalities],
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    summary = (
        f"{name}, {opts.model} {opts.image_size}px: val Dice {validation['dice']:.3f}, IoU {validation['iou']:.3f}, "
        f"HD95 {validation['hd95']:.1f}px"
    )
    metrics = {"validation": validation, "per_image": rows}
    save_seg_checkpoint(out, model, threshold=DEFAULT_THRESHOLD, training=training, metrics=metrics, summary=summary)
    out.with_suffix(".metrics.json").write_text(
        json.dumps({"summary": summary, **metrics, "training": training}, indent=2)
    )
    return metrics

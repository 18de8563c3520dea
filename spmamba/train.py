"""``spmamba train``: one-class training on normal images, model selection and calibration on validation.

Recipe (the reference code's; docs/method.md): AdamW, lr 0.005 at batch 16 (scaled linearly with the
batch), weight decay 1e-4 except on biases and 1-D parameters, loss = 5 x multi-scale MSE + 25 x mean
prototype distance, decoder drop-path up to 0.2, no augmentation, lr x0.1 at 80% of the epochs. The
frozen encoder's features are cached in memory after the first epoch, so later epochs only run the
trainable part. Validation is patient-disjoint from training where file names carry patient ids.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import add_to_checkpoint, load_checkpoint, read_metadata, save_checkpoint
from .data import csv_list, discover, load_batch, load_masks, subsample
from .evaluate import save_curve
from .imaging import WINDOW_PRESETS
from .inference import maps_for_samples
from .intensity import INTENSITY
from .metrics import (
    auroc_gain_interval,
    auroc_interval,
    calibrate,
    flag_rates,
    image_metrics,
    image_metrics_with_intervals,
    pixel_report,
)
from .model import PRESETS, SPMamba, SPMambaConfig
from .model.encoders import ENCODERS
from .scan import ORDERS
from .scoring import WEIGHT_SETTINGS, ComponentMaps, MapNorm, ScoreWeights, ablation_weights, rescore
from .training import end_epoch, load_state, machine_record, opt_field, run_paths, save_state, seed_everything


@dataclass
class TrainOptions:
    """Every training option, with its default and help: ``spmamba train`` is generated from this."""

    data: str = opt_field(None, "dataset root (train/NORMAL, val/...); default $SPMAMBA_DATA")
    out: str = opt_field(None, "checkpoint to write (.safetensors)")
    config: str = opt_field("cpu-lite0-256", "model preset (see spmamba info)", choices=sorted(PRESETS))
    encoder: str | None = opt_field(None, "the frozen encoder (default: the preset's)", choices=list(ENCODERS))
    # the paper's Table-4 ablations: the preset's value unless given
    scan_order: str | None = opt_field(None, "the decoder's scan order (default: the preset's)", choices=list(ORDERS))
    num_directions: int | None = opt_field(None, "scan directions (default: the preset's)", choices=[1, 2, 4, 8])
    prototype_banks: int | None = opt_field(
        None, "prototype banks K; 0 switches the prototype module off (default: the preset's)"
    )
    # spelt: a card's command names it even at the default, since each dataset's command sets its own schedule
    epochs: int = opt_field(20, "training epochs", spelt=True)
    batch_size: int = opt_field(16, "images per step")
    lr: float | None = opt_field(None, "learning rate (default 0.005 x batch / 16)")
    weight_decay: float = opt_field(1e-4, "AdamW weight decay (biases and 1-D parameters get none)")
    seed: int = opt_field(0, "seed for initialisation, order and subsets")
    feature_cache: bool = opt_field(True, "cache the frozen encoder's features after the first epoch")
    resume: bool = opt_field(False, "continue from OUT's .train-state file")
    max_train: int | None = opt_field(None, "seeded subset of training images")
    max_val: int | None = opt_field(None, "seeded subset of validation images")
    val_every: int = opt_field(1, "validate every N epochs (and after the last)")
    keep: str = opt_field(
        "last",
        "which epoch the checkpoint holds: the last (epochs fixed beforehand) or the best on validation",
        choices=["last", "best"],
    )
    intensity: str = opt_field(
        "raw", "per-image intensity rule applied before the model (spmamba.intensity)", choices=list(INTENSITY)
    )
    map_norm: str = opt_field(
        "raw",
        "score the raw component maps, or maps standardised per pixel against the training normals (MapNorm)",
        choices=["raw", "normalised"],
    )
    val_list: str | None = opt_field(None, "CSV (path,label[,mask]) to validate on instead of the dataset's split")
    train_list: str | None = opt_field(None, "CSV (path,label) of the normal images to train on instead of train/")
    encoder_weights: str = opt_field("imagenet", "'imagenet' or a local weight file")
    dataset_name: str | None = opt_field(None, "name recorded in the model card metadata")
    modalities: tuple[str, ...] = opt_field(
        (), "DICOM Modality codes of the training images (e.g. CR DX); the demo preselects by them", flag="--modality"
    )
    dicom_window: str | None = opt_field(
        None,
        "CT window the training images were exported in; the demo and spmamba predict apply it to DICOM CT",
        choices=[k for k, v in WINDOW_PRESETS.items() if v],
    )


def model_config(opts: TrainOptions) -> SPMambaConfig:
    """The preset, with the run's intensity rule, encoder and any ablation switch (scan order, directions,
    prototypes)."""
    switches = {k: getattr(opts, k) for k in ("encoder", "scan_order", "num_directions", "prototype_banks")}
    overrides = {k: v for k, v in switches.items() if v is not None}
    return dataclasses.replace(SPMambaConfig.preset(opts.config), intensity=opts.intensity, **overrides)


def select_weights(maps: ComponentMaps, labels: np.ndarray) -> tuple[ScoreWeights, dict]:
    """The paper's published weights, unless another principled setting (the reference code's, max-only)
    beats them on validation by more than chance: the lower end of the paired bootstrap 95% interval of
    its AUROC gain must be above zero. Returns the weights and, per setting, AUROC, its interval and the gain."""
    base = rescore(maps, ScoreWeights.paper()).total.numpy()
    table, chosen, best_gain = {}, "paper", 0.0
    for name, make in WEIGHT_SETTINGS.items():
        scores = rescore(maps, make()).total.numpy()
        auc = image_metrics(scores, labels)["auroc"]
        gain, lo, hi = auroc_gain_interval(scores, base, labels)
        table[name] = {
            "auroc": auc,
            "auroc_ci95": list(auroc_interval(scores, labels)),
            "gain_over_paper": gain,
            "gain_ci95": [lo, hi],
            "weights": make().to_dict(),
        }
        if name != "paper" and lo > 0 and gain > best_gain:
            chosen, best_gain = name, gain
    rule = "paper's weights unless a setting's paired bootstrap 95% AUROC-gain interval lies above zero"
    return WEIGHT_SETTINGS[chosen](), {"chosen": chosen, "rule": rule, "settings": table}


def validation_record(model: SPMamba, samples: list, labels: np.ndarray, batch_size: int, prefix: str) -> dict:
    """One split's AUROC under every weight setting and every score-term ablation, plus the weights the rule
    picks there, as ``<prefix>_auroc_<name>`` fields of an epoch's history record."""
    maps = maps_for_samples(model, samples, batch_size)
    weights, selection = select_weights(maps, labels)
    record = {f"{prefix}_auroc_{n.replace('-', '_')}": row["auroc"] for n, row in selection["settings"].items()}
    record[f"{prefix}_auroc_paper_weights"] = record.pop(f"{prefix}_auroc_paper")
    for name, w in ablation_weights(ScoreWeights.paper()).items():
        record[f"{prefix}_auroc_terms_{name.replace('+ ', 'with_').replace(' ', '_')}"] = image_metrics(
            rescore(maps, w).total.numpy(), labels
        )["auroc"]
    chosen = selection["chosen"]
    record[f"{prefix}_weights_chosen"], record[f"{prefix}_auroc_chosen"] = (
        chosen,
        selection["settings"][chosen]["auroc"],
    )
    return record


def summary_line(dataset: str, encoder: str, size: int, validation: dict) -> str:
    """The one line a checkpoint list shows: data, encoder, size, and validation AUROC, accuracy and F1."""
    v = validation
    return (
        f"{dataset}, {encoder}, {size}px: val AUROC {100 * v['auroc']:.1f}, "
        f"acc {100 * v['accuracy']:.1f}, F1 {100 * v['f1']:.1f}"
    )


def write_metrics_json(checkpoint: Path) -> None:
    """The checkpoint's figures beside it as ``.metrics.json``, for readers without safetensors."""
    meta = read_metadata(checkpoint)
    keys = ("summary", "metrics", "score_weights", "training")
    checkpoint.with_suffix(".metrics.json").write_text(json.dumps({k: meta[k] for k in keys}, indent=2))


def train(opts: TrainOptions) -> dict:
    """Train for a fixed number of epochs, keep the last (or, with ``keep='best'``, the best epoch on
    validation AUROC under the weights :func:`select_weights` picks at that epoch), calibrate, write the
    checkpoint; return metrics. Where the data has another acquisition group (``Splits.shift_val``), every
    validation is reported on both splits and the score weights are chosen on the shift split."""
    seed_everything(opts.seed)
    out, state_path, best_path = run_paths(opts.out)
    splits = discover(opts.data, seed=opts.seed)
    train_set = subsample(csv_list(opts.train_list) if opts.train_list else splits.train, opts.max_train, opts.seed)
    val_set = subsample(csv_list(opts.val_list) if opts.val_list else splits.val, opts.max_val, opts.seed)
    val_labels = np.array([s.label for s in val_set])
    if len(set(val_labels)) < 2:
        raise ValueError("the validation split needs normal and abnormal images to calibrate the threshold")
    shift_set = [] if opts.val_list else subsample(splits.shift_val, opts.max_val, opts.seed)
    shift_labels = np.array([s.label for s in shift_set])
    choose_set, choose_labels = (shift_set, shift_labels) if len(set(shift_labels)) == 2 else (val_set, val_labels)
    cfg = model_config(opts)
    model = SPMamba(cfg, encoder_weights=opts.encoder_weights)
    lr = opts.lr if opts.lr is not None else 0.005 * opts.batch_size / 16
    opt = torch.optim.AdamW(model.parameter_groups(opts.weight_decay), lr=lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, int(0.8 * opts.epochs))], gamma=0.1)
    info = {"epoch": 0, "history": [], "best_auroc": -1.0, "best_epoch": 0, "train_seconds": 0.0}
    if opts.resume and state_path.is_file():
        info = load_state(state_path, model, opt, sched)

    images = load_batch(
        train_set, cfg.image_size, cfg.intensity
    )  # decoded once; the official recipe has no augmentation
    cache: list[torch.Tensor] | None = None  # encoder features of every training image
    gen = torch.Generator().manual_seed(opts.seed + info["epoch"])
    for epoch in range(info["epoch"] + 1, opts.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(images), generator=gen)
        batches = [order[i : i + opts.batch_size] for i in range(0, len(order), opts.batch_size)]
        fill = opts.feature_cache and cache is None
        losses = []
        bar = tqdm(batches, desc=f"epoch {epoch}/{opts.epochs}", unit="batch", leave=False)
        for bi, idx in enumerate(bar):
            if opts.feature_cache and not fill:
                feats = [f[idx] for f in cache]
            else:
                feats = model.encoder(images[idx])
                if fill:  # stored in dataset order; later epochs index them with their permutation
                    if cache is None:
                        cache = [f.new_empty((len(images),) + f.shape[1:]) for f in feats]
                    for stored, f in zip(cache, feats, strict=True):
                        stored[idx] = f
            loss = model.loss(model.forward_features(feats))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            seen = (bi + 1) * opts.batch_size
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", img_s=f"{seen / (time.perf_counter() - t0):.1f}")
        record = end_epoch(sched, info, epoch, losses, len(images), t0)
        record["encoder_cached"] = bool(opts.feature_cache and not fill)
        if epoch % opts.val_every == 0 or epoch == opts.epochs:
            record.update(validation_record(model, val_set, val_labels, opts.batch_size, "val"))
            if len(set(shift_labels)) == 2:
                record.update(validation_record(model, shift_set, shift_labels, opts.batch_size, "shift"))
            key = "shift" if choose_set is shift_set else "val"
            record["chosen_on"] = key
            # With keep='best' the epoch is chosen under the weights the rule picks at that epoch, on the split
            # that chooses (the shift split where there is one).
            if opts.keep == "best" and record[f"{key}_auroc_chosen"] > info["best_auroc"]:
                info["best_auroc"], info["best_epoch"] = record[f"{key}_auroc_chosen"], epoch
                save_checkpoint(best_path, model, summary="best epoch so far (uncalibrated)")
        info["history"].append(record)
        info["epoch"] = epoch
        tqdm.write(json.dumps(record))
        save_state(state_path, model, opt, sched, info)

    if opts.keep == "best":
        model, _ = load_checkpoint(best_path, encoder_weights=opts.encoder_weights)
    else:
        info["best_epoch"] = info["epoch"]
    model.eval()
    step = 64  # the training normals' maps, a batch at a time, for the per-pixel statistics
    norm = MapNorm.fit(maps_for_samples(model, train_set[i : i + step]) for i in range(0, len(train_set), step))

    def scored(samples: list) -> ComponentMaps:
        m = maps_for_samples(model, samples, opts.batch_size)
        return norm.apply(m) if opts.map_norm == "normalised" else m

    weights, selection = select_weights(scored(choose_set), choose_labels)
    selection["split"] = "shift" if choose_set is shift_set else "in-pool"
    maps = scored(val_set)
    val_scores = rescore(maps, weights).total.numpy()
    calibration = calibrate(val_scores, val_labels)
    validation = image_metrics_with_intervals(val_scores, val_labels, calibration["threshold"])
    metrics = {
        "validation": validation,
        "weight_selection": selection,
        "ablation_auroc": {
            name: image_metrics(rescore(maps, w).total.numpy(), val_labels)["auroc"]
            for name, w in ablation_weights(weights).items()
        },
    }
    if len(set(shift_labels)) == 2:
        shift_maps = scored(shift_set)
        shift_scores = rescore(shift_maps, weights).total.numpy()
        metrics["shift_validation"] = image_metrics_with_intervals(shift_scores, shift_labels, calibration["threshold"])
        calibration.update(flag_rates(shift_scores, shift_labels, calibration["threshold"], "shift"))
        metrics["shift_ablation_auroc"] = {
            name: image_metrics(rescore(shift_maps, w).total.numpy(), shift_labels)["auroc"]
            for name, w in ablation_weights(weights).items()
        }
    masks = load_masks(val_set, cfg.image_size)
    if masks is not None:
        metrics["validation_pixel"] = pixel_report(rescore(maps, weights).anomaly_map.numpy(), masks.numpy())
    name = opts.dataset_name or Path(opts.data).name
    training = {
        "dataset": name,
        "data_path_name": Path(opts.data).name,
        "train_images": len(train_set),
        "moved_to_val_by_patient": splits.moved_to_val,
        "val_normal": int((val_labels == 0).sum()),
        "val_abnormal": int((val_labels == 1).sum()),
        "shift_rule": splits.shift_rule if len(shift_set) else "",
        "shift_normal": int((shift_labels == 0).sum()),
        "shift_abnormal": int((shift_labels == 1).sum()),
        "keep": opts.keep,
        "epochs": opts.epochs,
        "best_epoch": info["best_epoch"],
        "batch_size": opts.batch_size,
        "lr": lr,
        "weight_decay": opts.weight_decay,
        "seed": opts.seed,
        "train_seconds": round(info["train_seconds"], 1),
        **machine_record(),
        "history": info["history"],
        "options": dataclasses.asdict(opts),
        "modalities": [m.upper() for m in opts.modalities],
        "dicom_window": opts.dicom_window,
    }
    v = metrics["validation"]
    summary = summary_line(name, cfg.encoder, cfg.image_size, v)
    save_checkpoint(out, model, weights, calibration=calibration, training=training, metrics=metrics, summary=summary)
    # the statistics are kept either way, so normalised scoring can be measured on the checkpoint later
    in_use = opts.map_norm == "normalised"
    add_to_checkpoint(out, norm.tensors(), {"map_norm": {"in_use": in_use, "n_train": len(train_set)}})
    write_metrics_json(out)
    save_curve(info["history"], out.with_suffix(".curve.png"), f"{name}: {cfg.encoder}, {cfg.image_size}px")
    return metrics

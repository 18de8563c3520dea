"""``spmamba card``: a Hugging Face model card written from a checkpoint's own metadata.

Every figure on the card comes from the checkpoint (validation metrics with their intervals, the
weight selection, the ablation, counts, command and wall time) and the dataset registry (source,
citation, licence), so a card cannot disagree with the file it describes. Narrative sections a
person writes go below the generated part.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

from .checkpoint import read_metadata, read_raw_metadata
from .datasets import dataset_info
from .intensity import stored_intensity
from .metrics import TARGET_FPR
from .seg.checkpoint import SEG_FORMAT
from .seg.data import stored_augment, stored_keep, stored_kept_epoch
from .seg.mamba_mis import SEG_PRESETS, stored_stem

GENERATED_END = "<!-- end of the generated part: notes written by people follow -->"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _threshold_text(cal: dict) -> str:
    """The threshold, the rule it was read by, and the shares of normal (and abnormal) images it flags on
    each validation split it was measured on."""
    if "threshold" not in cal:
        return "none (uncalibrated)"
    rule = cal.get("rule", f"flags at most {100 * TARGET_FPR:g}% of the normal validation images")

    def rate(key: str) -> str:
        lo, hi = cal.get(f"{key}_ci95", (None, None))
        return f"{_pct(cal[key])}%" + (f" (95% CI {_pct(lo)}–{_pct(hi)}%)" if lo is not None else "")

    parts = []
    for split, label in (("val", "the validation"), ("shift", "the shift split's")):
        if f"{split}_false_positive_rate" in cal:
            flagged = f"{rate(f'{split}_false_positive_rate')} of {label} normals"
            if f"{split}_true_positive_rate" in cal:
                flagged += f" and {rate(f'{split}_true_positive_rate')} of its abnormal images"
            parts.append(flagged)
    text = f"{cal['threshold']:.4f}: {rule}"
    return f"{text}; it flags " + "; ".join(parts) if parts else text


def _ci(d: dict, key: str) -> str:
    lo, hi = d.get(f"{key}_ci95", (None, None))
    return f"{_pct(d[key])} (95% CI {_pct(lo)}–{_pct(hi)})" if lo is not None else _pct(d[key])


def command(training: dict, out_name: str, prog: str = "train", options: type | None = None) -> str:
    """The ``spmamba train`` (or ``spmamba seg train``) command line that reproduces a run: every recorded
    option that differs from its default (or that its field marks ``spelt``), spelt as the parser generated from
    the options dataclass spells it."""
    if options is None:
        from .train import TrainOptions as options
    recorded = training.get("options") or {}
    args = ["--out", out_name]
    for f in dataclasses.fields(options):
        if f.name in ("data", "out", "resume") or f.name not in recorded:
            continue
        value, default = recorded[f.name], f.default
        if isinstance(default, tuple):
            value, default = list(value or ()), list(default)
        if value == default and not f.metadata.get("spelt"):
            continue
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        if isinstance(default, bool):
            args.append(f"--no-{f.name.replace('_', '-')}" if default else flag)
        elif isinstance(value, list):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    data = f"$SPMAMBA_DATA/{training.get('data_path_name', 'DATA')}"
    return f"spmamba {prog} {data} {shlex.join(args)}"


def _yaml(meta: dict, name: str) -> str:
    t, m = meta["training"], meta["metrics"]
    info = dataset_info(t.get("data_path_name"))
    v, px = m["validation"], m.get("validation_pixel")
    results = [
        ("roc_auc", v["auroc"], f"image AUROC (95% CI {_pct(v['auroc_ci95'][0])}-{_pct(v['auroc_ci95'][1])})"),
        ("average_precision", v["ap"], "image AP"),
    ]
    if px:
        results += [
            ("roc_auc", px["pixel_auroc"], "pixel AUROC"),
            ("aupro", px["aupro"], "pixel AUPRO up to 30% FPR"),
        ]
    cal = meta.get("calibration") or {}
    if "val_false_positive_rate" in cal:
        results.append(("false_positive_rate", cal["val_false_positive_rate"], "normals flagged at the threshold"))
    lines = [
        "---",
        f"license: {info.hub_licence if info else 'other'}",
        "library_name: spmamba",
        "pipeline_tag: image-classification",
        "tags:",
        *(f"  - {tag}" for tag in ("anomaly-detection", "unsupervised-anomaly-detection", "medical-imaging", "mamba")),
        *(f"  - modality-{mod.lower()}" for mod in t.get("modalities") or ()),
        "datasets:",
        f"  - {t.get('data_path_name', 'unknown')}",
        "metrics:",
        "  - roc_auc",
        "model-index:",
        f"  - name: {name}",
        "    results:",
        "      - task:",
        "          type: anomaly-detection",
        "        dataset:",
        f"          type: {t.get('data_path_name', 'unknown')}",
        f"          name: {json.dumps(t.get('dataset', ''))}",
        "          split: validation",
        "        metrics:",
    ]
    for kind, value, label in results:
        lines += [f"          - type: {kind}", f"            value: {_pct(value)}", f"            name: {label}"]
    lines.append("---")
    return "\n".join(lines)


def render_card(path: str | Path) -> str:
    """The generated card of the checkpoint at ``path`` (YAML header, facts table, validation tables):
    an SP-Mamba anomaly checkpoint or a segmentation one."""
    path = Path(path)
    if read_raw_metadata(path)["format"] == SEG_FORMAT:
        return render_seg_card(path)
    meta = read_metadata(path)
    t, m, cfg = meta["training"], meta["metrics"], meta["model_config"]
    v, cal = m["validation"], meta.get("calibration") or {}
    w = meta["score_weights"]
    rows = [
        ("Method", "SP-Mamba (Pan & Lu, ACM MM 2025) as in docs/method.md"),
        (
            "Configuration",
            f"`{t.get('options', {}).get('config')}`: {cfg['encoder']} encoder (frozen, ImageNet), "
            f"{cfg['image_size']}×{cfg['image_size']} input, bottleneck {cfg['bottleneck_dim']} channels, decoder "
            f"depths {cfg['depths']}, d_state {cfg['d_state']}, {cfg['scan_order']} scan in "
            f"{cfg['num_directions']} directions, "
            + (f"K = {cfg['prototype_banks']} prototype banks" if cfg["prototype_banks"] else "no prototype module"),
        ),
        ("Data", _data_line(t)),
        ("Images are not redistributed", "the data is read from `$SPMAMBA_DATA`; the test part is held out"),
        (
            "Split",
            f"{t['train_images']} training normals; validation {t['val_normal']} normal + {t['val_abnormal']} "
            f"abnormal images of other patients ({t.get('moved_to_val_by_patient', 0)} training images moved "
            "to validation because their patient is there)",
        ),
        (
            "Training",
            f"{t['epochs']} epochs, batch {t['batch_size']}, lr {t['lr']:g}, weight decay {t['weight_decay']:g}, "
            f"seed {t['seed']}; "
            + (
                "the last epoch kept (the epoch count fixed before training)"
                if t.get("options", {}).get("keep") == "last"
                else f"best epoch {t['best_epoch']} by validation AUROC under "
                + (
                    "the weights the rule picks at that epoch"
                    if any("val_auroc_chosen" in h for h in t.get("history", []))
                    else "the paper's weights"
                )
            ),
        ),
        ("Wall time", _wall_time(t)),
        ("Command", f"`{command(t, path.name)}`"),
        ("Modalities", ", ".join(t.get("modalities") or ()) or "not stated"),
        (
            "Input",
            (
                f"PNG/JPEG min-max normalised; DICOM CT is read in the **{t['dicom_window']}** window "
                "(the window the training images were exported in), by the page, the API and `spmamba predict`"
            )
            if t.get("dicom_window")
            else "each image min-max normalised to [0, 1] (DICOM: the file's own VOI window)"
            + _intensity_text(t.get("options", {}).get("intensity")),
        ),
        (
            "Score weights",
            f"{m['weight_selection']['chosen']}: α {w['alpha']:g}, β {w['beta']:g}, γ {w['gamma']:g}, "
            f"DoG {w['dog_sigma']:g}/{w['dog_k_sigma']:g} (the paper's unless another principled setting beats "
            "them on validation beyond chance)",
        ),
        ("Threshold", _threshold_text(cal)),
    ]
    out = [
        _yaml(meta, path.stem),
        "",
        f"# Model card: `{path.name}`",
        "",
        "**Research use only — not for diagnosis.** The score says how unusual an image is for a model "
        "trained on normal images of one dataset; it is not a clinical finding.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {val} |" for k, val in rows),
        "",
        f"## Validation ({t['val_normal']} normal + {t['val_abnormal']} abnormal images, patient-disjoint)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| image AUROC | **{_ci(v, 'auroc')}** |",
        f"| image AP | {_ci(v, 'ap')} |",
    ]
    if "accuracy_ci95" in v:
        out += [
            f"| accuracy at the threshold | {_ci(v, 'accuracy')} |",
            f"| F1 at the threshold | {_ci(v, 'f1')} |",
        ]
    out.append(
        f"| oracle accuracy / best F1 (threshold chosen on these images; comparison only) | "
        f"{_pct(v['oracle_accuracy'])} / {_pct(v['oracle_f1'])} |"
    )
    px = m.get("validation_pixel")
    if px:
        out += [
            f"| pixel AUROC (at {px['resolution']}×{px['resolution']}) | **{_ci(px, 'pixel_auroc')}** |",
            f"| pixel AP | {_pct(px['pixel_ap'])} |",
            f"| pixel F1-max | {_pct(px['pixel_f1_max'])} |",
            f"| AUPRO (to 30% FPR) | {_pct(px['aupro'])} |",
        ]
    sv = m.get("shift_validation")
    if sv:
        out += [
            "",
            f"## Shift validation ({t['shift_normal']} normal + {t['shift_abnormal']} abnormal images of another "
            f"acquisition group: {t['shift_rule']})",
            "",
            "Held out of training and of the validation above. The score weights are chosen here, so the AUROC "
            "under them is not an unbiased estimate; the maps' peak alone (max only, no choice) is.",
            "",
            "| metric | value |",
            "|---|---|",
            f"| image AUROC (the chosen weights) | **{_ci(sv, 'auroc')}** |",
            f"| image AUROC (max only) | {_pct(m['shift_ablation_auroc']['max only'])} |",
            f"| accuracy / F1 at the threshold | {_ci(sv, 'accuracy')} / {_ci(sv, 'f1')} |",
        ]
    split = "the shift split" if m["weight_selection"].get("split") == "shift" else "validation"
    out += ["", f"Score weights, chosen on {split} (paired stratified bootstrap of the AUROC gain, 2,000 resamples):"]
    out.append("")
    out += ["| setting | AUROC (95% CI) | gain over the paper's (95% CI) |", "|---|---|---|"]
    for name, row in m["weight_selection"]["settings"].items():
        gain = "–" if name == "paper" else f"{100 * row['gain_over_paper']:+.1f} ({_pct(row['gain_ci95'][0])} to "
        gain += "" if name == "paper" else f"{_pct(row['gain_ci95'][1])})"
        out.append(f"| {name} | {_ci(row, 'auroc')} | {gain} |")
    if m.get("ablation_auroc"):
        out += [
            "",
            "Score-term ablation in the cached maps (each term added with the chosen weights' value for it, or "
            "the paper's where the chosen weights switch it off):",
            "",
        ]
        out += ["| score | AUROC |", "|---|---|"]
        out += [f"| {name} | {_pct(auc)} |" for name, auc in m["ablation_auroc"].items()]
    history = [h for h in t.get("history", []) if "val_auroc_paper_weights" in h]
    if history:
        per_epoch = ", ".join(_pct(h["val_auroc_paper_weights"]) for h in history)
        out += ["", f"Validation AUROC per epoch (paper's weights): {per_epoch}."]
        if all("val_auroc_chosen" in h for h in history):
            chosen = ", ".join(f"{_pct(h['val_auroc_chosen'])} ({h['val_weights_chosen']})" for h in history)
            out += ["", f"Under the weights the rule picks at each epoch (the epoch-selection criterion): {chosen}."]
    out += ["", GENERATED_END, ""]
    return "\n".join(out)


def _intensity_text(rule: str | None) -> str:
    """The intensity rule every path applies before the network, as a card states it."""
    if not rule or rule == "raw":
        return ""
    return f", then the **{rule}** intensity rule (`spmamba.intensity`), by every path that scores an image"


def _data_line(training: dict) -> str:
    info = dataset_info(training.get("data_path_name"))
    if info:
        return f"{info.citation}. Source: {info.source}. Licence: {info.licence}."
    return f"{training.get('dataset')} (not a registered dataset: source and licence unknown)"


ORIENTATIONS = {
    "dihedral": "random flips and quarter turns",
    "horizontal": "random left-right flips only (`--augment horizontal`: ultrasound's vertical axis is depth)",
}


def seg_recipe(meta: dict) -> tuple[str, str, float, str]:
    """How a segmentation network was fed and trained beyond its architecture: input scaling, the
    orientations augmentation drew, the peak learning rate, and which epoch's weights were kept."""
    from .seg.train import SegTrainOptions

    options = meta["training"]["options"]
    return (
        stored_intensity(meta["config"]),
        stored_augment(options),
        options.get("lr", SegTrainOptions.lr),
        stored_keep(options),
    )


def default_seg_recipe() -> tuple[str, str, float, str]:
    """The recipe ``spmamba seg train`` follows unless told otherwise."""
    from .seg.train import SegTrainOptions as o

    return o.intensity, o.augment, o.lr, o.keep


def seg_network_name(meta: dict, recipe: bool = True) -> str:
    """A segmentation checkpoint's network in a few words: the U-Net's width, or Mamba-MIS's preset, a width
    or stem other than the preset's, the parts an ablation switched off, and (with ``recipe``) input scaling,
    augmentation, learning rate and the epoch kept where they are not the defaults."""
    cfg = meta["config"]
    scaled = ""
    if recipe:
        (intensity, orientations, lr, keep), default = seg_recipe(meta), default_seg_recipe()
        scaled += ", percentile-scaled input" if intensity != default[0] else ""
        scaled += ", left-right flips only" if orientations != default[1] else ""
        scaled += f", lr {lr:g}" if lr != default[2] else ""
        scaled += f", {keep} epoch kept" if keep != default[3] else ""
    if meta["model"] == "unet":
        return f"U-Net (C {cfg['channels']}){scaled}"
    changes = [
        ("single raster scan", cfg["bfss_directions"] == 1),
        ("no spectral gate", not cfg["spectral_gate"]),
        ("no bridge", not cfg["bridge"]),
    ]
    preset = meta["training"]["options"].get("config")
    stem = stored_stem(cfg)
    own = SEG_PRESETS.get(preset)
    if own is not None and stem != own.stem:
        changes.insert(0, (f"{stem} stem", True))
    if own is not None and cfg.get("channels", own.channels) != own.channels:
        changes.insert(0, (f"C {cfg['channels']}", True))
    changes.append((f"channel MLP ×{cfg.get('mlp_ratio')}", bool(cfg.get("mlp_ratio"))))  # no preset has one
    detail = " + detail branch" if cfg.get("detail_branch") else ""
    return f"Mamba-MIS {preset}{detail}" + "".join(f", {o}" for o, on in changes if on) + scaled


def _seg_network(meta: dict, macs: tuple[int, int]) -> str:
    cfg, t = meta["config"], meta["training"]
    size = cfg["image_size"]
    cost = f"{t['parameters'] / 1e6:.2f} M parameters, {sum(macs) / 1e9:.2f} GMACs per {size}×{size} image"
    if stored_intensity(cfg) != "raw":
        cost += "; each input image divided by its own 99.9th percentile (`--intensity percentile`)"
    name = seg_network_name(meta, recipe=False)
    if meta["model"] == "unet":
        return f"{name}, the plain baseline of `spmamba/seg/unet.py`; {cost}"
    return (
        f"{name} as built in docs/mamba_mis.md: C {cfg['channels']}, "
        f"{stored_stem(cfg)} stem, encoder depths "
        f"{cfg['depths']}, d_state {cfg['d_state']}, BFSS in {cfg['bfss_directions']} direction(s)"
        + (f", a channel MLP (ratio {cfg['mlp_ratio']}) in each block" if cfg.get("mlp_ratio") else "")
        + f"; {cost}"
    )


def reproducible(meta: dict) -> dict:
    """The training record with the options whose default changed since older runs spelt out, so that their
    command reproduces them: Mamba-MIS's stem (runs from before ``--stem`` were patch-stem, the preset's is
    now conv) and the epoch kept (runs from before ``--keep`` kept the best)."""
    t = meta["training"]
    spelt = {"keep": stored_keep(t["options"])}
    if meta["model"] == "mamba-mis":
        spelt["stem"] = stored_stem(meta["config"])
    return {**t, "options": {**t["options"], **spelt}}


def _wall_time(training: dict) -> str:
    """Training time and the machine; older records name no CPU type."""
    seconds = training.get("train_seconds", 0)
    text = f"{seconds:,.0f} s ({seconds / 60:.0f} min) on {training.get('threads')} CPU threads"
    if "cpu" in training:
        text += f" ({training['cpu']}; torch {training['torch']}, numba {training['numba']})"
    return text


def _kept(training: dict) -> str:
    """Which epoch's weights a checkpoint holds, and the validation peak where that is not the one kept."""
    kept = stored_kept_epoch(training)
    if stored_keep(training["options"]) == "best":
        return f"the best epoch by validation Dice kept ({kept}; validation overstates such a pick)"
    return f"the last epoch kept, fixed before training (validation Dice peaked at epoch {training['best_epoch']})"


def render_seg_card(path: str | Path) -> str:
    """The card of a segmentation checkpoint (Mamba-MIS or the U-Net baseline), from its metadata."""
    import torch

    from .profiling import forward_macs
    from .seg.checkpoint import load_seg_checkpoint

    path = Path(path)
    model, meta = load_seg_checkpoint(path)
    t, v = meta["training"], meta["metrics"]["validation"]
    size = meta["config"]["image_size"]
    macs = forward_macs(model, torch.rand(1, 3, size, size))
    info = dataset_info(t.get("data_path_name"))
    name = "Mamba-MIS" if meta["model"] == "mamba-mis" else "U-Net"
    header = [
        "---",
        f"license: {info.hub_licence if info else 'other'}",
        "library_name: spmamba",
        "pipeline_tag: image-segmentation",
        "tags:",
        *(f"  - {tag}" for tag in ("medical-image-segmentation", "lesion-segmentation", "medical-imaging")),
        *(["  - mamba"] if meta["model"] == "mamba-mis" else []),
        *(f"  - modality-{mod.lower()}" for mod in t.get("modalities") or ()),
        "datasets:",
        f"  - {t.get('data_path_name', 'unknown')}",
        "metrics:",
        "  - dice",
        "model-index:",
        f"  - name: {path.stem}",
        "    results:",
        "      - task:",
        "          type: image-segmentation",
        "        dataset:",
        f"          type: {t.get('data_path_name', 'unknown')}",
        f"          name: {json.dumps(t.get('dataset', ''))}",
        "          split: validation",
        "        metrics:",
        "          - type: dice",
        f"            value: {v['dice']:.3f}",
        f"            name: mean Dice (95% CI {v['dice_ci95'][0]:.3f}-{v['dice_ci95'][1]:.3f})",
        "          - type: iou",
        f"            value: {v['iou']:.3f}",
        "            name: mean IoU",
        "---",
    ]
    from .seg.train import SegTrainOptions

    o = t["options"]
    rows = [
        ("Network", _seg_network(meta, macs)),
        ("Data", _data_line(t)),
        ("Images are not redistributed", "the data is read from `$SPMAMBA_DATA`; the test part is held out"),
        ("Split", f"{t['train_images']} training and {len(t['val_images'])} validation images: {t['split']}"),
        (
            "Training",
            f"{t['epochs']} epochs at {size}×{size}, batch {o['batch_size']}, AdamW lr {o['lr']:g} (cosine), "
            f"weight decay {o['weight_decay']:g}, seed {o['seed']}; augmentation: "
            f"{ORIENTATIONS[stored_augment(o)]}, mild brightness/contrast jitter; {_kept(t)}",
        ),
        ("Wall time", _wall_time(t)),
        ("Command", f"`{command(reproducible(meta), path.name, 'seg train', SegTrainOptions)}`"),
        ("Modalities", ", ".join(t.get("modalities") or ()) or "not stated"),
        (
            "Output",
            f"lesion probability per pixel, resized to the image's own shape; mask at {meta['threshold']:g}",
        ),
    ]
    per_epoch = ", ".join(f"{h['val_dice']:.3f}" for h in t["history"])
    out = [
        "\n".join(header),
        "",
        f"# Model card: `{path.name}`",
        "",
        f"**Research use only — not for diagnosis.** {name} outlines what it learned to call a lesion in one "
        "dataset; the outline is not a clinical finding.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {val} |" for k, val in rows),
        "",
        f"## Validation ({v['n']} images"
        + (f" of {v['groups']} patients" if v.get("resampled") == "patients" else "")
        + ", at each image's own resolution)",
        "",
        f"| metric | mean over images (95% CI, bootstrap over {v.get('resampled', 'images')}) |",
        "|---|---|",
        f"| Dice | **{v['dice']:.3f}** ({v['dice_ci95'][0]:.3f}–{v['dice_ci95'][1]:.3f}) |",
        f"| IoU | {v['iou']:.3f} ({v['iou_ci95'][0]:.3f}–{v['iou_ci95'][1]:.3f}) |",
        f"| HD95 (pixels) | {v['hd95']:.1f} ({v['hd95_ci95'][0]:.1f}–{v['hd95_ci95'][1]:.1f}) |",
        "",
        f"Validation Dice per epoch (at {size}×{size}): {per_epoch}.",
        "",
        GENERATED_END,
        "",
    ]
    return "\n".join(out)

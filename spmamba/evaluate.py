"""``spmamba evaluate``: image metrics at the checkpoint's validation threshold, the test-oracle figure
for comparison with the paper, pixel metrics when masks exist, and the score ablation from one pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .archive import SCORE_COLUMNS
from .data import NORMAL_NAMES, Sample, csv_list, labelled_folder, load_masks
from .inference import Predictor
from .metrics import pixel_report
from .scoring import rescore


def evaluation_samples(folder: str | Path) -> list[Sample]:
    """A folder with a normal sub-folder and abnormal ones, a dataset root whose test/ holds them, or a
    CSV list (``path,label[,mask]``)."""
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() == ".csv":
        return csv_list(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is neither a folder nor a CSV list")
    subs = {d.name for d in folder.iterdir() if d.is_dir()}
    if "test" in subs and not subs & set(NORMAL_NAMES):
        folder = folder / "test"
    return labelled_folder(folder)


def evaluate(
    checkpoint: str | Path,
    folder: str | Path,
    batch_size: int = 16,
    json_out: str | Path | None = None,
    roc_out: str | Path | None = None,
    encoder_weights: str = "imagenet",
    csv_out: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> dict:
    """Metrics of ``checkpoint`` on ``folder``, computed from one row per image (:mod:`spmamba.archive`, here
    or on a Dask cluster: the same rows, the same figures), with every image's score and components
    (``per_image``: the JSON holds them; ``csv_out`` writes them as a table), so methods can be compared image
    by image. Pixel metrics, where masks exist, come from the maps of the masked images, made here."""
    from .archive import Item, Job, collect, metrics_from_rows

    predictor = Predictor(checkpoint, encoder_weights=encoder_weights)
    samples = evaluation_samples(folder)
    if len({s.label for s in samples}) < 2:
        raise ValueError(f"{folder} needs both normal and abnormal images to compute AUROC")
    items = [Item(str(s.path), int(s.label), str(s.mask) if s.mask else None) for s in samples]
    rows = collect(items, Job(checkpoint=str(checkpoint), ablations=True), workers, scheduler, chunk=batch_size)
    calibration = predictor.calibration or {}
    threshold = calibration.get("threshold")
    result = {
        "checkpoint": Path(checkpoint).name,
        "folder": str(folder),
        **metrics_from_rows(rows, threshold),
        "score_weights": predictor.weights.to_dict(),
        "note": "accuracy/f1 use the threshold fixed on validation; oracle_* pick the best threshold on this "
        "folder itself, as the paper's reference code does, and are for comparison only",
    }
    result["per_image"] = [
        {"file": Path(r["file"]).name, "label": r["label"], **{c: r[c] for c in SCORE_COLUMNS}}
        | {"above_threshold": r["above_threshold"], "error": r["error"]}
        for r in rows.to_dict("records")
    ]
    if csv_out:
        write_rows(result["per_image"], csv_out)
    masks = load_masks(samples, predictor.image_size)  # None when no image has a mask
    pixel = None
    if masks is not None:
        maps = rescore(predictor.maps_for_samples(samples, batch_size), predictor.weights)
        pixel = (maps.anomaly_map.numpy(), masks.numpy())
        result["pixel"] = pixel_report(*pixel)
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2, default=_plain))
    if roc_out:
        ok = rows[rows["error"].isna()]
        save_roc(
            ok["total"].to_numpy(float),
            ok["label"].to_numpy(int),
            roc_out,
            f"{Path(checkpoint).stem} on {Path(folder).name}",
            pixel,
        )
    return result


def _plain(value):
    """numpy scalars and pandas' missing values as JSON."""
    if isinstance(value, np.generic):
        return value.item()
    return None


def write_rows(rows: list[dict], path: str | Path) -> Path:
    """Rows of dicts as a CSV with their keys as the header."""
    import csv

    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def save_curve(history: list[dict], path: str | Path, title: str) -> None:
    """Validation AUROC (paper's, reference code's and max-only weights, on the in-pool and the shift split where
    recorded) and training loss per epoch, from a checkpoint's training history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.0), dpi=120)
    curves = [
        ("val_auroc_paper_weights", "o-", "in-pool validation, paper's weights"),
        ("val_auroc_reference", "o--", "in-pool validation, reference code's weights"),
        ("val_auroc_max_only", "o:", "in-pool validation, max-only"),
        ("shift_auroc_paper_weights", "^-", "shift validation, paper's weights"),
        ("shift_auroc_reference", "^--", "shift validation, reference code's weights"),
        ("shift_auroc_max_only", "^:", "shift validation, max-only"),
    ]
    for key, style, label in curves:
        done = [h for h in history if key in h]
        if done:
            ax.plot([h["epoch"] for h in done], [100 * h[key] for h in done], style, lw=1.8, label=label)
    ax.set(xlabel="epoch", ylabel="AUROC (%)")
    ax.set_title(title, fontsize=9)
    twin = ax.twinx()
    twin.plot([h["epoch"] for h in history], [h["loss"] for h in history], "s--", color="grey", lw=1, label="loss")
    twin.set_ylabel("training loss")
    lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    labels = [ln.get_label() for ln in lines]  # below the axes: the curves stay visible
    ax.legend(lines, labels, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_roc(
    scores: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    title: str,
    pixel: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """ROC and precision-recall curves of the image scores, and of the pixel maps against ``pixel``'s
    masks when given, in one figure (one row per level)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    levels = [("image", np.asarray(labels).ravel(), np.asarray(scores, float).ravel())]
    if pixel is not None:
        levels.append(("pixel", np.asarray(pixel[1]).ravel().astype(int), np.asarray(pixel[0], float).ravel()))
    fig, axes = plt.subplots(len(levels), 2, figsize=(8, 4 * len(levels)), dpi=110, squeeze=False)
    for (level, y, s), (roc_ax, pr_ax) in zip(levels, axes, strict=True):
        fpr, tpr, _ = roc_curve(y, s)
        roc_ax.plot(fpr, tpr, lw=2, label=f"AUROC {100 * roc_auc_score(y, s):.1f}")
        roc_ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
        roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{level} ROC")
        precision, recall, _ = precision_recall_curve(y, s)
        step = max(1, len(recall) // 5000)  # pixel curves have millions of points; the plot needs thousands
        pr_ax.plot(recall[::step], precision[::step], lw=2, label=f"AP {100 * average_precision_score(y, s):.1f}")
        pr_ax.axhline(y.mean(), ls="--", color="grey", lw=1)
        pr_ax.set(xlabel="recall", ylabel="precision", title=f"{level} precision-recall")
        for ax in (roc_ax, pr_ax):
            ax.set(xlim=(0, 1), ylim=(0, 1.01))
            ax.legend(loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

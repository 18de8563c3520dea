"""``spmamba evaluate``: image metrics at the checkpoint's validation threshold, the test-oracle figure
for comparison with the paper, pixel metrics when masks exist, and the score ablation from one pass."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .data import Sample, labelled_folder, load_mask
from .inference import maps_for_samples
from .metrics import image_metrics, pixel_metrics
from .scoring import ScoreWeights, ablation_weights, rescore


def evaluation_samples(folder: str | Path) -> list[Sample]:
    """A folder with NORMAL/ + abnormal sub-folders, or a dataset root whose test/ holds them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    subs = {d.name for d in folder.iterdir() if d.is_dir()}
    if "test" in subs and not subs & {"NORMAL", "good", "PNEUMONIA", "Ungood"}:
        folder = folder / "test"
    return labelled_folder(folder)


def evaluate(checkpoint: str | Path, folder: str | Path, batch_size: int = 16, json_out: str | Path | None = None,
             roc_out: str | Path | None = None, encoder_weights: str = "imagenet") -> dict:
    model, meta = load_checkpoint(checkpoint, encoder_weights=encoder_weights)
    samples = evaluation_samples(folder)
    labels = np.array([s.label for s in samples])
    if len(set(labels)) < 2:
        raise ValueError(f"{folder} needs both normal and abnormal images to compute AUROC")
    maps = maps_for_samples(model, samples, batch_size, desc="evaluate")
    weights = ScoreWeights.from_dict(meta["score_weights"])
    calibration = meta.get("calibration") or {}
    scores = rescore(maps, weights)
    result = {
        "checkpoint": Path(checkpoint).name, "folder": str(folder), "n_normal": int((labels == 0).sum()),
        "n_abnormal": int((labels == 1).sum()), "score_weights": weights.to_dict(),
        "image": image_metrics(scores.total.numpy(), labels, calibration.get("threshold")),
        "ablation_auroc": {name: image_metrics(rescore(maps, w).total.numpy(), labels)["auroc"]
                           for name, w in ablation_weights(weights).items()},
        "note": "accuracy/f1 use the threshold fixed on validation; oracle_* pick the best threshold on this "
                "folder itself, as the paper's reference code does, and are for comparison only",
    }
    if any(s.mask is not None for s in samples):
        size = model.config.image_size
        masks = torch.stack([load_mask(s.mask, size) if s.mask is not None else torch.zeros(size, size, dtype=bool)
                             for s in samples])
        result["pixel"] = pixel_metrics(scores.anomaly_map.numpy(), masks.numpy())
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2))
    if roc_out:
        save_roc(scores.total.numpy(), labels, roc_out, result["image"]["auroc"], Path(checkpoint).stem)
    return result


def save_roc(scores: np.ndarray, labels: np.ndarray, path: str | Path, auroc: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.plot(fpr, tpr, lw=2, label=f"AUROC {100 * auroc:.1f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

"""Out-of-fold calibration: a threshold from every training normal, each scored by a model that did not see it.

Why: a threshold read on a handful of validation normals cannot be placed (head CT has 10), and one read on
normals of the training pool's own acquisition promised 5% false alarms and gave 25% on new patients. With
k folds, k models are trained with the checkpoint's own recipe (its stored options) on k−1 folds of the
training normals and score the held-out fold under the checkpoint's own score weights; the threshold is the
target-FPR quantile of those scores. The checkpoint keeps its network; only its calibration changes, and the
validation calibration stays beside it for comparison.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import random
from pathlib import Path

import numpy as np

from .checkpoint import add_to_checkpoint, read_metadata
from .data import Sample, discover, patient_id, subsample
from .inference import Predictor
from .metrics import TARGET_FPR, calibrate, flag_rates, image_metrics_with_intervals
from .train import TrainOptions, summary_line, train, write_metrics_json


def fold_of(samples: list[Sample], folds: int, seed: int = 0) -> list[int]:
    """A seeded fold per sample, whole patients together where file names carry them."""
    groups = sorted({patient_id(s.path) or s.path.name for s in samples})
    random.Random(seed).shuffle(groups)
    fold = {g: i % folds for i, g in enumerate(groups)}
    return [fold[patient_id(s.path) or s.path.name] for s in samples]


def _write_list(samples: list[Sample], path: Path) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        w.writerows([str(s.path.resolve()), s.label] for s in samples)
    return path


def _folds(checkpoint: str | os.PathLike, data: str | os.PathLike, folds: int):
    """The checkpoint's training options, its data splits, its training normals and their folds."""
    meta = read_metadata(checkpoint)
    names = {f.name for f in dataclasses.fields(TrainOptions)}
    stored = meta["training"]["options"]
    opts = TrainOptions(**{k: (tuple(v) if k == "modalities" else v) for k, v in stored.items() if k in names})
    splits = discover(data, seed=opts.seed)
    normals = subsample(splits.train, opts.max_train, opts.seed)
    return opts, splits, normals, fold_of(normals, folds, opts.seed)


def train_fold(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    fold: int,
    folds: int = 5,
    workdir: str | os.PathLike = "runs/oof",
) -> Path:
    """Train the model of one fold (all training normals but that fold's) with the checkpoint's recipe, unless
    it is already in ``workdir``; an interrupted one resumes. Folds are independent, so several processes can
    train different folds at once."""
    opts, _, normals, assignment = _folds(checkpoint, data, folds)
    return _train_fold(opts, normals, assignment, fold, data, workdir)


def _train_fold(opts: TrainOptions, normals: list[Sample], assignment: list[int], fold: int, data, workdir) -> Path:
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"fold{fold}.safetensors"
    if not out.is_file():
        fit = [s for s, f in zip(normals, assignment, strict=True) if f != fold]
        fold_opts = dataclasses.replace(
            opts,
            data=str(data),
            out=str(out),
            train_list=str(_write_list(fit, work / f"fold{fold}-train.csv")),
            resume=True,
            keep="last",
            val_every=opts.epochs,
        )
        train(fold_opts)
    return out


def out_of_fold_calibration(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    folds: int = 5,
    workdir: str | os.PathLike = "runs/oof",
    target_fpr: float = TARGET_FPR,
) -> dict:
    """Train ``folds`` models with the checkpoint's recipe (those not yet in ``workdir``), score each held-out
    fold, and return the calibration those out-of-fold normal scores give, with its false-positive and
    true-positive rates on the checkpoint's validation images (intervals by bootstrap)."""
    opts, splits, normals, assignment = _folds(checkpoint, data, folds)
    final = Predictor(checkpoint)
    oof = np.full(len(normals), np.nan)
    for k in range(folds):
        held = [s for s, f in zip(normals, assignment, strict=True) if f == k]
        fold_model = Predictor(_train_fold(opts, normals, assignment, k, data, workdir))
        totals = final.score(fold_model.maps_for_samples(held), final.weights).total.numpy()
        oof[[i for i, f in enumerate(assignment) if f == k]] = totals
    cal = calibrate(oof, np.zeros(len(oof), int), target_fpr)
    cal["rule"] = (
        f"flags at most {100 * target_fpr:g}% of the training normals, each scored by one of {folds} models "
        "trained without its fold (out-of-fold)"
    )
    labels = np.array([s.label for s in splits.val])
    val = final.score(final.maps_for_samples(splits.val), final.weights).total.numpy()
    cal.update(flag_rates(val, labels, cal["threshold"], "val"))
    at = image_metrics_with_intervals(val, labels, cal["threshold"])
    cal["validation_at_threshold"] = {k: at[k] for k in ("threshold", "accuracy", "accuracy_ci95", "f1", "f1_ci95")}
    cal["n_abnormal"] = int((labels == 1).sum())
    cal["out_of_fold"] = {"folds": folds, "n_normal": len(oof), "scores": [float(x) for x in oof]}
    return cal


def write_calibration(checkpoint: str | os.PathLike, calibration: dict) -> None:
    """Make ``calibration`` the checkpoint's own, keeping the one it replaces as ``calibration_validation``; the
    validation accuracy and F1 (in the metrics, the summary line and ``.metrics.json``) become those at the new
    threshold, the old ones kept as ``validation_at_validation_threshold``."""
    path = Path(checkpoint)
    meta = read_metadata(path)
    kept = meta.get("calibration_validation") or meta.get("calibration")
    update = {"calibration": calibration, "calibration_validation": kept}
    at = calibration.get("validation_at_threshold")
    if at:
        metrics = dict(meta["metrics"])
        metrics.setdefault("validation_at_validation_threshold", metrics["validation"])
        metrics["validation"] = {**metrics["validation"], **at}
        config, name = meta["model_config"], meta["training"]["dataset"]
        summary = summary_line(name, config["encoder"], config["image_size"], metrics["validation"])
        update.update(metrics=metrics, summary=summary)
    add_to_checkpoint(path, {}, update)
    if path.with_suffix(".metrics.json").is_file():
        write_metrics_json(path)

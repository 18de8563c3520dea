"""Per-image segmentation metrics: Dice, IoU and the 95th-percentile Hausdorff distance."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """2|P∩T| / (|P| + |T|); 1 when both are empty."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * (pred & truth).sum() / total)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """|P∩T| / |P∪T|; 1 when both are empty."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    union = (pred | truth).sum()
    return 1.0 if union == 0 else float((pred & truth).sum() / union)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with a 4-connected background neighbour (or on the image border)."""
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(2, 1), border_value=0)


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """95th percentile of the symmetric surface distances (MedPy's ``hd95``), in pixels or in the units of
    ``spacing``. An empty prediction of a non-empty truth (or the reverse) gets the image diagonal, the
    largest distance possible, so a missed lesion is not left out of the mean; two empty masks give 0."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return float(np.hypot(pred.shape[0] * spacing[0], pred.shape[1] * spacing[1]))
    sp, st = _surface(pred), _surface(truth)
    to_truth = ndimage.distance_transform_edt(~st, sampling=spacing)[sp]
    to_pred = ndimage.distance_transform_edt(~sp, sampling=spacing)[st]
    return float(np.percentile(np.concatenate([to_truth, to_pred]), 95))


def segmentation_scores(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> dict:
    return {"dice": dice(pred, truth), "iou": iou(pred, truth), "hd95": hd95(pred, truth, spacing)}

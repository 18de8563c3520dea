"""Image- and pixel-level metrics, and the validation calibration stored in checkpoints."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, precision_recall_curve, roc_auc_score, roc_curve


def calibrate(scores: np.ndarray, labels: np.ndarray) -> dict:
    """Threshold maximising Youden's J (sensitivity + specificity - 1) on validation data, and the
    normal-score distribution the demo places an image in. Youden's J, unlike accuracy, does not
    depend on the validation set's class ratio, which differs from the test set's."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    fpr, tpr, thr = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    normal = np.sort(scores[labels == 0])
    return {
        "threshold": float(thr[best]) if np.isfinite(thr[best]) else float(scores.max()),
        "rule": "Youden's J on the validation split",
        "normal_mean": float(normal.mean()),
        "normal_std": float(normal.std()),
        "normal_quantiles": {str(q): float(np.quantile(normal, q / 100)) for q in (5, 25, 50, 75, 95, 99)},
        "normal_scores": [float(x) for x in normal],
        "n_normal": int((labels == 0).sum()),
        "n_abnormal": int((labels == 1).sum()),
    }


def image_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float | None = None) -> dict:
    """AUROC and AP; accuracy and F1 at ``threshold``; the test-oracle accuracy/F1 the reference code reports."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    out = {"auroc": float(roc_auc_score(labels, scores)), "ap": float(average_precision_score(labels, scores))}
    if threshold is not None:
        pred = scores >= threshold
        out.update(accuracy=float(accuracy_score(labels, pred)), f1=float(f1_score(labels, pred)),
                   threshold=float(threshold))
    acc, t = oracle_threshold(scores, labels)
    out.update(oracle_accuracy=acc, oracle_f1=float(f1_score(labels, scores >= t)))
    return out


def oracle_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(best accuracy, its threshold) over every threshold ``score >= t`` at an observed score; ties go to
    the highest t. Counted with sorted searches rather than one accuracy pass per threshold, because
    training calls this for every epoch and every candidate score weighting."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    cands = np.unique(scores)
    pos, neg = np.sort(scores[labels == 1]), np.sort(scores[labels == 0])
    correct = (len(pos) - np.searchsorted(pos, cands, "left")) + np.searchsorted(neg, cands, "left")
    acc = correct / len(scores)
    best = len(acc) - 1 - int(np.argmax(acc[::-1]))  # the last (highest-threshold) maximum
    return float(acc[best]), float(cands[best])


def pixel_metrics(maps: np.ndarray, masks: np.ndarray) -> dict:
    """Pixel AUROC, AP and the best F1 over thresholds."""
    y, s = np.asarray(masks).ravel().astype(int), np.asarray(maps, float).ravel()
    p, r, _ = precision_recall_curve(y, s)
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0)
    return {"pixel_auroc": float(roc_auc_score(y, s)), "pixel_ap": float(average_precision_score(y, s)),
            "pixel_f1_max": float(f1.max())}

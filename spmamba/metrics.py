"""Image- and pixel-level metrics, and the validation calibration stored in checkpoints."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, precision_recall_curve, roc_auc_score

TARGET_FPR = 0.05  # share of validation normals the calibrated threshold may flag


def calibrate(scores: np.ndarray, labels: np.ndarray, target_fpr: float = TARGET_FPR) -> dict:
    """Threshold flagging at most ``target_fpr`` of the normal validation images (``score >= threshold``,
    half-way between the last normal score kept below it and the next), and the normal-score
    distribution the demo places an image in.

    A specificity target, not Youden's J or best accuracy: the threshold then depends only on what
    normal images score, and the share of unseen normals it flags is what a user needs to know (it
    comes with a bootstrap interval). Youden's J on a small normal set put the last threshold inside
    the normal range and flagged about half of unseen normal radiographs."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    normal = np.sort(scores[labels == 0])
    allowed = int(np.floor(target_fpr * len(normal)))
    threshold = float((normal[-allowed - 1] + normal[-allowed]) / 2 if allowed else np.nextafter(normal[-1], np.inf))
    flagged = normal >= threshold
    lo, hi = bootstrap_interval(lambda idx: float(flagged[idx].mean()), len(normal))
    return {
        "threshold": threshold,
        "rule": f"flags at most {100 * target_fpr:g}% of the normal validation images",
        "val_false_positive_rate": float(flagged.mean()),
        "val_false_positive_rate_ci95": [lo, hi],
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
        out.update(
            accuracy=float(accuracy_score(labels, pred)), f1=float(f1_score(labels, pred)), threshold=float(threshold)
        )
    acc, _ = oracle_threshold(scores, labels)
    out.update(oracle_accuracy=acc, oracle_f1=best_f1(scores, labels))
    return out


def best_f1(scores: np.ndarray, labels: np.ndarray) -> float:
    """The best F1 over all thresholds, as the reference code reports it (an oracle, like its accuracy)."""
    p, r, _ = precision_recall_curve(np.asarray(labels, int), np.asarray(scores, float))
    return float(np.max(np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)))


def bootstrap_interval(
    stat, n: int, labels: np.ndarray | None = None, rounds: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of ``stat(indices)`` over bootstrap resamples of n items; with ``labels``
    the resampling is stratified (each class resampled within itself, so AUROC is always defined)."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    vals = np.array([stat(np.concatenate([rng.choice(g, len(g)) for g in groups])) for _ in range(rounds)])
    return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))


def auroc_interval(scores: np.ndarray, labels: np.ndarray, rounds: int = 2000) -> tuple[float, float]:
    """Stratified bootstrap 95% interval of the AUROC."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    return bootstrap_interval(lambda i: roc_auc_score(labels[i], scores[i]), len(labels), labels, rounds)


def auroc_gain_interval(
    new: np.ndarray, base: np.ndarray, labels: np.ndarray, rounds: int = 2000
) -> tuple[float, float, float]:
    """AUROC(new) - AUROC(base) on the same images, with its paired stratified bootstrap 95% interval."""
    new, base, labels = np.asarray(new, float), np.asarray(base, float), np.asarray(labels, int)

    def gain(i):
        return roc_auc_score(labels[i], new[i]) - roc_auc_score(labels[i], base[i])

    lo, hi = bootstrap_interval(gain, len(labels), labels, rounds)
    return float(gain(np.arange(len(labels)))), lo, hi


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
    return {
        "pixel_auroc": float(roc_auc_score(y, s)),
        "pixel_ap": float(average_precision_score(y, s)),
        "pixel_f1_max": float(f1.max()),
    }

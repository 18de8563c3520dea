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
    return {
        "threshold": threshold,
        "rule": f"flags at most {100 * target_fpr:g}% of the normal validation images",
        **flag_rates(normal, np.zeros(len(normal), int), threshold, "val"),
        "normal_mean": float(normal.mean()),
        "normal_std": float(normal.std()),
        "normal_quantiles": {str(q): float(np.quantile(normal, q / 100)) for q in (5, 25, 50, 75, 95, 99)},
        "normal_scores": [float(x) for x in normal],
        "n_normal": int((labels == 0).sum()),
        "n_abnormal": int((labels == 1).sum()),
    }


def flag_rates(scores: np.ndarray, labels: np.ndarray, threshold: float, prefix: str) -> dict:
    """The shares of normal and abnormal images a threshold flags, with bootstrap 95% intervals, as
    ``{prefix}_false_positive_rate`` (and ``_ci95``) and ``{prefix}_true_positive_rate``: what a verdict can
    promise about images the threshold was not read on."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    out = {}
    for name, cls in (("false_positive_rate", 0), ("true_positive_rate", 1)):
        flagged = scores[labels == cls] >= threshold
        if len(flagged):
            out[f"{prefix}_{name}"] = float(flagged.mean())
            interval = bootstrap_interval(lambda i, f=flagged: float(f[i].mean()), len(flagged))
            out[f"{prefix}_{name}_ci95"] = list(interval)
    return out


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


def image_metrics_with_intervals(scores: np.ndarray, labels: np.ndarray, threshold: float | None = None) -> dict:
    """:func:`image_metrics` plus stratified bootstrap 95% intervals of AUROC, AP and (at ``threshold``)
    accuracy and F1: the figures a model card states. Every resample is scored at once, as item weights."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    out = image_metrics(scores, labels, threshold)
    counts = bootstrap_counts(len(labels), labels)
    vals = {"auroc": weighted_auroc(scores, labels, counts), "ap": weighted_ap(scores, labels, counts)}
    if threshold is not None:
        pred = scores >= threshold
        tp, fp = counts @ (pred & (labels == 1)), counts @ (pred & (labels == 0))
        fn, tn = counts @ (~pred & (labels == 1)), counts @ (~pred & (labels == 0))
        vals["accuracy"] = (tp + tn) / counts.sum(1)
        vals["f1"] = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1e-300), 0.0)
    for name, v in vals.items():
        out[f"{name}_ci95"] = list(_quantiles(v))
    return out


def best_f1(scores: np.ndarray, labels: np.ndarray) -> float:
    """The best F1 over all thresholds, as the reference code reports it (an oracle, like its accuracy)."""
    p, r, _ = precision_recall_curve(np.asarray(labels, int), np.asarray(scores, float))
    return float(np.max(np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)))


def _resamples(n: int, labels: np.ndarray | None, rounds: int, seed: int):
    """The bootstrap draws every interval here uses: ``rounds`` index arrays of n items, stratified by
    ``labels`` when given (each class resampled within itself, so AUROC is always defined)."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for _ in range(rounds):
        yield np.concatenate([rng.choice(g, len(g)) for g in groups])


def bootstrap_interval(
    stat, n: int, labels: np.ndarray | None = None, rounds: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of ``stat(indices)`` over bootstrap resamples of n items (stratified by
    ``labels`` when given)."""
    vals = np.array([stat(idx) for idx in _resamples(n, labels, rounds, seed)])
    return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))


def bootstrap_counts(n: int, labels: np.ndarray | None = None, rounds: int = 2000, seed: int = 0) -> np.ndarray:
    """(rounds, n) multiplicities of each item in the resamples :func:`bootstrap_interval` draws (the same
    draws), so a statistic can be computed for every resample at once as a weighted one."""
    return np.stack([np.bincount(idx, minlength=n) for idx in _resamples(n, labels, rounds, seed)]).astype(float)


def _class_weights_by_score(scores: np.ndarray, labels: np.ndarray, counts: np.ndarray, descending: bool = False):
    """Per resample, the weight of normal and abnormal items at each distinct score, distinct scores in order:
    what AUROC and AP are sums over (tied items share one threshold)."""
    order = np.argsort(-scores if descending else scores, kind="stable")
    s, y, c = scores[order], labels[order], counts[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return np.add.reduceat(c * (y == 0), starts, axis=1), np.add.reduceat(c * (y == 1), starts, axis=1)


def weighted_auroc(scores: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUROC of each row of ``counts`` (item weights), ties counting half: sklearn's ``roc_auc_score`` of the
    resample, for every resample in one pass."""
    w0, w1 = _class_weights_by_score(np.asarray(scores, float), np.asarray(labels, int), np.atleast_2d(counts))
    below = np.cumsum(w0, axis=1) - w0
    return (w1 * (below + 0.5 * w0)).sum(1) / (w1.sum(1) * w0.sum(1))


def weighted_ap(scores: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average precision of each row of ``counts`` (item weights): sklearn's ``average_precision_score`` of the
    resample (precision at each distinct score times the recall it adds), for every resample in one pass."""
    w0, w1 = _class_weights_by_score(
        np.asarray(scores, float), np.asarray(labels, int), np.atleast_2d(counts), descending=True
    )
    tp, fp = np.cumsum(w1, axis=1), np.cumsum(w0, axis=1)
    precision = tp / np.maximum(tp + fp, 1e-300)
    return (w1 / tp[:, -1:] * precision).sum(1)


def _quantiles(vals: np.ndarray) -> tuple[float, float]:
    return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))


def auroc_interval(scores: np.ndarray, labels: np.ndarray, rounds: int = 2000) -> tuple[float, float]:
    """Stratified bootstrap 95% interval of the AUROC."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    return _quantiles(weighted_auroc(scores, labels, bootstrap_counts(len(labels), labels, rounds)))


def auroc_gain_interval(
    new: np.ndarray, base: np.ndarray, labels: np.ndarray, rounds: int = 2000
) -> tuple[float, float, float]:
    """AUROC(new) - AUROC(base) on the same images, with its paired stratified bootstrap 95% interval.

    ``new`` or ``base`` may be ``(runs, images)``: several training runs of one recipe, whose mean AUROC is
    compared, every run on the same resamples, so the interval holds the images' variation around that mean.
    """
    new, base, labels = np.atleast_2d(new).astype(float), np.atleast_2d(base).astype(float), np.asarray(labels, int)
    counts = bootstrap_counts(len(labels), labels, rounds)

    def mean_auroc(runs: np.ndarray) -> np.ndarray:
        return np.mean([weighted_auroc(s, labels, counts) for s in runs], axis=0)

    lo, hi = _quantiles(mean_auroc(new) - mean_auroc(base))
    point = np.mean([roc_auc_score(labels, s) for s in new]) - np.mean([roc_auc_score(labels, s) for s in base])
    return float(point), lo, hi


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
    """Pixel AUROC, AP, the best F1 over thresholds, and AUPRO up to 30% FPR (:func:`aupro`)."""
    y, s = np.asarray(masks).ravel().astype(int), np.asarray(maps, float).ravel()
    p, r, _ = precision_recall_curve(y, s)
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0)
    return {
        "pixel_auroc": float(roc_auc_score(y, s)),
        "pixel_ap": float(average_precision_score(y, s)),
        "pixel_f1_max": float(f1.max()),
        "aupro": aupro(maps, masks),
    }


def pixel_report(maps: np.ndarray, masks: np.ndarray) -> dict:
    """:func:`pixel_metrics` with the pixel AUROC's image-bootstrap interval and the resolution measured at."""
    return {
        **pixel_metrics(maps, masks),
        "pixel_auroc_ci95": list(pixel_auroc_interval(maps, masks)),
        "resolution": int(np.asarray(maps).shape[-1]),
    }


def pixel_auroc_interval(
    maps: np.ndarray, masks: np.ndarray, rounds: int = 2000, bins: int = 4096, seed: int = 0
) -> tuple[float, float]:
    """95% interval of the pixel AUROC over bootstrap resamples of whole images (pixels of one image are not
    independent). Each image is reduced once to histograms of its normal and anomalous pixels' scores, so a
    resample's AUROC costs O(bins) rather than a sort of millions of pixels; ties within a bin count half."""
    maps, masks = np.asarray(maps, float), np.asarray(masks).astype(bool)
    edges = np.linspace(maps.min(), maps.max(), bins + 1)[1:-1]
    idx = np.digitize(maps.reshape(len(maps), -1), edges)
    flat = masks.reshape(len(masks), -1)
    pos = np.stack([np.bincount(i[m], minlength=bins) for i, m in zip(idx, flat, strict=True)]).astype(float)
    neg = np.stack([np.bincount(i[~m], minlength=bins) for i, m in zip(idx, flat, strict=True)]).astype(float)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(rounds):
        pick = rng.integers(0, len(maps), len(maps))
        p, n = pos[pick].sum(0), neg[pick].sum(0)
        if p.sum() == 0 or n.sum() == 0:
            continue
        below = np.cumsum(n) - n  # normal pixels in lower bins
        vals.append(float((p * (below + n / 2)).sum() / (p.sum() * n.sum())))
    return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))


def pro_curve(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, PRO) at every distinct threshold, as MVTec AD defines them: FPR over all normal pixels of all
    images, PRO the mean over every connected ground-truth region (8-connectivity, per image) of the
    share of its pixels at or above the threshold.

    One sort instead of one pass per threshold: each normal pixel adds 1/n_normal to the FPR and each
    region pixel 1/(region size x n_regions) to the PRO once the threshold falls to its score."""
    from skimage.measure import label

    maps, masks = np.asarray(maps, float), np.asarray(masks).astype(bool)
    regions = np.stack([label(m, connectivity=2) for m in masks])
    offset = np.cumsum([0] + [int(r.max()) for r in regions[:-1]])
    ids = np.where(regions > 0, regions + offset[:, None, None], 0).ravel()
    n_regions = int(ids.max())
    if n_regions == 0 or masks.all():
        raise ValueError("AUPRO needs at least one anomalous region and some normal pixels")
    size = np.bincount(ids, minlength=n_regions + 1)
    fp_w = np.where(ids == 0, 1.0 / (ids == 0).sum(), 0.0)
    pro_w = np.where(ids > 0, 1.0 / (size[ids] * n_regions), 0.0)
    order = np.argsort(-maps.ravel(), kind="stable")
    s = maps.ravel()[order]
    fpr, pro = np.cumsum(fp_w[order]), np.cumsum(pro_w[order])
    last = np.r_[s[1:] != s[:-1], True]  # thresholds fall between distinct scores
    return np.r_[0.0, fpr[last]], np.r_[0.0, pro[last]]


def aupro(maps: np.ndarray, masks: np.ndarray, max_fpr: float = 0.3) -> float:
    """Area under the PRO curve up to ``max_fpr`` (interpolated at it), divided by ``max_fpr`` so that 1 is
    perfect: the per-region localisation metric of MVTec AD and anomalib, which weighs a small lesion as
    much as a large one (pixel AUROC is dominated by the large ones)."""
    fpr, pro = pro_curve(maps, masks)
    keep = fpr <= max_fpr
    x, y = fpr[keep], pro[keep]
    if x[-1] < max_fpr and keep.sum() < len(fpr):
        nxt = int(keep.sum())
        y_end = np.interp(max_fpr, fpr[nxt - 1 : nxt + 1], pro[nxt - 1 : nxt + 1])
        x, y = np.r_[x, max_fpr], np.r_[y, y_end]
    return float(np.trapezoid(y, x) / max_fpr)

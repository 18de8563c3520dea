"""Bootstrap intervals: every resample at once as item weights (ours) beside sklearn called on each resample
(the reference), on the same draws, at the sizes of this project's validation splits.

    python bench/bench_metrics.py [--repeat 3]

Both sides compute the same 2,000 stratified resamples (the test checks they agree resample by resample).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import timeit  # noqa: E402
from spmamba.metrics import auroc_interval, bootstrap_interval, image_metrics_with_intervals  # noqa: E402

SIZES = {"head CT validation": (10, 20), "chest in-pool validation": (106, 314), "chest shift validation": (186, 839)}


def reference_intervals(scores: np.ndarray, labels: np.ndarray, threshold: float) -> list:
    """The four card intervals the straightforward way: index each resample, call sklearn."""
    fns = (
        lambda i: roc_auc_score(labels[i], scores[i]),
        lambda i: average_precision_score(labels[i], scores[i]),
        lambda i: accuracy_score(labels[i], scores[i] >= threshold),
        lambda i: f1_score(labels[i], scores[i] >= threshold),
    )
    return [bootstrap_interval(fn, len(labels), labels) for fn in fns]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(
        "| split size (normal / abnormal) | AUROC interval: ours ms | sklearn per resample ms | speed-up |"
        " card intervals (AUROC, AP, acc, F1): ours ms | sklearn per resample ms | speed-up |"
    )
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, (n0, n1) in SIZES.items():
        labels = np.r_[np.zeros(n0, int), np.ones(n1, int)]
        print(row(f"{name} ({n0} / {n1})", rng.random(n0 + n1) + 0.3 * labels, labels, args.repeat))


def row(name: str, scores: np.ndarray, labels: np.ndarray, repeat: int) -> str:
    t = float(np.median(scores))
    auc = timeit(lambda: auroc_interval(scores, labels), repeat)
    auc_ref = timeit(
        lambda: bootstrap_interval(lambda i: roc_auc_score(labels[i], scores[i]), len(labels), labels), repeat
    )
    card = timeit(lambda: image_metrics_with_intervals(scores, labels, t), repeat)
    card_ref = timeit(lambda: reference_intervals(scores, labels, t), max(1, repeat // 3), warmup=0)
    return (
        f"| {name} | {auc:.0f} | {auc_ref:.0f} | {auc_ref / auc:.0f}× | {card:.0f} | {card_ref:.0f} | "
        f"{card_ref / card:.0f}× |"
    )


if __name__ == "__main__":
    main()

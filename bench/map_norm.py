"""Raw against normalised component maps (``spmamba.scoring.MapNorm``), per score term, on the in-pool and
the shift validation split, with paired bootstrap intervals: the measurement the unseen-patients issue asks
for before normalised maps become a checkpoint setting.

    python bench/map_norm.py CHECKPOINT [--data DATASET_ROOT] [--max-train N]

The statistics come from the checkpoint's training normals (the split ``spmamba.data.discover`` gives today,
the one the shift-aware runs trained on); nothing is fitted on a validation image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spmamba.checkpoint import load_checkpoint  # noqa: E402
from spmamba.data import data_root, discover, subsample  # noqa: E402
from spmamba.inference import maps_for_samples  # noqa: E402
from spmamba.metrics import auroc_gain_interval, auroc_interval, image_metrics  # noqa: E402
from spmamba.scoring import MapNorm, ScoreWeights, rescore  # noqa: E402

TERMS = {
    "reconstruction (max-only)": lambda m: rescore(m, ScoreWeights.max_only()).total,
    "prototype (its maximum)": lambda m: rescore(m, ScoreWeights.max_only()).prototype,
    "reconstruction + prototype": lambda m: rescore(m, ScoreWeights(beta=0.0, gamma=0.0)).total,
    "paper's weights (all four)": lambda m: rescore(m, ScoreWeights.paper()).total,
}
COMBINATION_ALPHAS = (0.25, 0.5, 1.0, 2.0)  # rule 2b's prototype weights for standardised maps, fixed in advance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", default=None, help="dataset root (default: $SPMAMBA_DATA/<the checkpoint's data>)")
    ap.add_argument("--max-train", type=int, default=None, help="seeded subset of training normals for the statistics")
    args = ap.parse_args()
    model, meta = load_checkpoint(args.checkpoint)
    root = Path(args.data) if args.data else data_root() / meta["training"]["data_path_name"]
    splits = discover(root)
    train = subsample(splits.train, args.max_train)
    step = 64
    norm = MapNorm.fit(maps_for_samples(model, train[i : i + step]) for i in range(0, len(train), step))
    print(f"`python bench/map_norm.py {args.checkpoint}` — statistics from {len(train)} training normals\n")
    print("| split | score term | raw AUROC | normalised AUROC | normalised − raw (95% CI) |")
    print("|---|---|---|---|---|")
    for name, samples in (("in-pool", splits.val), ("shift", splits.shift_val)):
        if not samples:
            continue
        labels = np.array([s.label for s in samples])
        raw = maps_for_samples(model, samples)
        normed = norm.apply(raw)
        for term, score in TERMS.items():
            a, b = score(raw).numpy(), score(normed).numpy()
            lo_a, hi_a = auroc_interval(a, labels)
            lo_b, hi_b = auroc_interval(b, labels)
            gain, lo, hi = auroc_gain_interval(b, a, labels)
            print(
                f"| {name} ({(labels == 0).sum()}/{(labels == 1).sum()}) | {term} | "
                f"{100 * image_metrics(a, labels)['auroc']:.1f} ({100 * lo_a:.1f}–{100 * hi_a:.1f}) | "
                f"{100 * image_metrics(b, labels)['auroc']:.1f} ({100 * lo_b:.1f}–{100 * hi_b:.1f}) | "
                f"{100 * gain:+.1f} ({100 * lo:+.1f} to {100 * hi:+.1f}) |"
            )
        if name == "shift":
            rule_2b(raw, normed, labels, ScoreWeights.from_dict(meta["score_weights"]))


def rule_2b(raw, normed, labels: np.ndarray, shipped: ScoreWeights) -> None:
    """Rule 2b (docs/experiments-shift.md): standardised maps scored as reconstruction + a x prototype, a chosen
    on the shift split, against the raw maps under the checkpoint's own weights, paired, on that split."""
    print("\nRule 2b (shift split): standardised maps, reconstruction + a × prototype\n")
    print("| a | AUROC |\n|---|---|")
    combined = {}
    for a in COMBINATION_ALPHAS:
        combined[a] = rescore(normed, ScoreWeights(alpha=a, beta=0.0, gamma=0.0)).total.numpy()
        print(f"| {a:g} | {100 * image_metrics(combined[a], labels)['auroc']:.1f} |")
    best = max(combined, key=lambda a: image_metrics(combined[a], labels)["auroc"])
    base = rescore(raw, shipped).total.numpy()
    gain, lo, hi = auroc_gain_interval(combined[best], base, labels)
    verdict = "normalised maps" if lo > 0 else "raw maps stay"
    print(
        f"\nchosen a = {best:g}; against the raw maps under the checkpoint's weights "
        f"({100 * image_metrics(base, labels)['auroc']:.1f}): {100 * gain:+.1f} ({100 * lo:+.1f} to "
        f"{100 * hi:+.1f}) → {verdict}"
    )


if __name__ == "__main__":
    main()

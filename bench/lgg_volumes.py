"""How often is the highest-scoring slice of a brain MRI volume a tumour slice?

Rebuilds each LGG validation patient's FLAIR slices (``lgg-flair/val``, stems
``TCGA_<site>_<patient>_<date>_<slice>``) as one volume in slice order, scores it as the Volume tab does,
and counts the patients whose highest slice has tumour, against what picking a slice at random gives.

    python bench/lgg_volumes.py [--checkpoint weights/lgg-flair-....safetensors] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spmamba.data import data_root, labelled_folder, patient_id  # noqa: E402
from spmamba.imaging import load_image  # noqa: E402
from spmamba.inference import Predictor  # noqa: E402
from spmamba.volume import Volume, volume_report, volume_scores  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    root = Path(args.data) if args.data else data_root()
    samples = labelled_folder(root / "lgg-flair" / "val")
    patients = defaultdict(list)
    for s in samples:
        patients[patient_id(s.path)].append(s)
    predictor = Predictor(args.checkpoint)
    hits, chance = [], []
    print("| patient | slices | tumour slices | highest slice | tumour? |")
    print("|---|---|---|---|---|")
    for pid, items in sorted(patients.items()):
        items.sort(key=lambda s: int(s.path.stem.rsplit("_", 1)[1]))
        volume = Volume(
            [load_image(s.path).grey for s in items],
            {"format": "PNG slices"},
            None,
            [s.path.stem.rsplit("_", 1)[1] for s in items],
        )
        rep = volume_report(predictor, volume, volume_scores(predictor, volume))
        top = rep["highest_slice"]
        labels = np.array([s.label for s in items])
        hits.append(bool(labels[top]))
        chance.append(labels.mean())
        print(f"| {pid} | {len(items)} | {labels.sum()} | {volume.labels[top]} | {'yes' if labels[top] else 'no'} |")
    print(
        f"\nhighest slice is a tumour slice in {sum(hits)} of {len(hits)} patients ({100 * np.mean(hits):.0f}%); "
        f"a random slice would be in {100 * np.mean(chance):.0f}% on average"
    )


if __name__ == "__main__":
    main()

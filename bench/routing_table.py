"""Routing table: where ``spmamba.pipeline`` sends the validation images of every dataset, and how many
images no checkpoint was trained on it flags as out of domain.

    python bench/routing_table.py [--per-dataset 200]

In-domain images: each dataset's validation images (anomaly datasets: in-pool and shift validation, normal
and abnormal; segmentation datasets: the checkpoint's validation split), a seeded subset, routed within their
family (Analyse: anomaly checkpoints; Segment: segmentation checkpoints) with no Modality, as a PNG gives
none. The domains' limits were read on validation images, so these are in-sample for the limit; the chest
X-rays of ``zhanglab-fullres`` (other exports, 512 px, other aspect) are not. Out-of-domain images: every
picture scikit-image ships (natural photographs, a document scan, text, astronomy, microscopy, a retina),
counted as flagged when both families call them unlike their training images.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spmamba.data import data_root, discover, subsample  # noqa: E402
from spmamba.imaging import LoadedImage, load_image  # noqa: E402
from spmamba.pipeline import ANOMALY, SEGMENT, Pipeline  # noqa: E402
from spmamba.seg.data import split_pairs  # noqa: E402

ANOMALY_SETS = {"zhanglab": "zhanglab", "zhanglab-fullres": "zhanglab", "lgg-flair": "lgg-flair", "head-ct": "head-ct"}
SEG_SETS = {"ph2": "ph2", "busi": "busi", "lgg-flair-seg": "lgg-flair-seg"}
SKIMAGE = [
    "astronaut", "brick", "camera", "cat", "chelsea", "checkerboard", "clock", "coffee", "coins", "colorwheel",
    "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon",
    "motorcycle_left", "page", "retina", "rocket", "text",
]  # fmt: skip


def images_of(root: Path, name: str) -> list[Path]:
    if name == "zhanglab-fullres":
        return sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    if name in SEG_SETS:
        return [p for p, _ in split_pairs(root / name).val]
    s = discover(root / name)
    return [x.path for x in s.val + s.shift_val]


def skimage_images() -> dict[str, LoadedImage]:
    from skimage import data

    out = {}
    for name in SKIMAGE:
        try:
            a = np.asarray(getattr(data, name)(), dtype=np.float32)
        except Exception:  # an image that needs a download is skipped: nothing is fetched here
            continue
        a = (a - a.min()) / max(float(np.ptp(a)), 1e-6)
        out[name] = LoadedImage(a[..., :3] if a.ndim == 3 else a, {"format": "PNG"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-dataset", type=int, default=200)
    args = ap.parse_args()
    root = data_root()
    pipe = Pipeline()
    t0 = time.perf_counter()
    print("| dataset | family | images | routed to its dataset's checkpoint | in domain |")
    print("|---|---|---|---|---|")
    for sets, family in ((ANOMALY_SETS, ANOMALY), (SEG_SETS, SEGMENT)):
        for name, target in sets.items():
            if not (root / name).is_dir():
                continue
            paths = subsample(images_of(root, name), args.per_dataset)
            routes = [pipe.route(load_image(p), family) for p in paths]
            right = [
                Path(r.path).stem.startswith(target + "-") or Path(r.path).stem.startswith(target + "1") for r in routes
            ]
            inside = [bool(r.in_domain) for r in routes]
            print(f"| {name} | {family} | {len(paths)} | {100 * np.mean(right):.1f}% | {100 * np.mean(inside):.1f}% |")
    flagged = []
    rows = []
    for name, img in skimage_images().items():
        a, s = pipe.route(img, ANOMALY), pipe.route(img, SEGMENT)
        out = not a.in_domain and not s.in_domain
        flagged.append(out)
        rows.append(
            f"{name}: {'flagged' if out else 'NOT flagged'} (nearest anomaly checkpoint "
            f"{Path(a.nearest).stem}, segmentation {Path(s.nearest).stem})"
        )
    print(
        f"\nOut of domain (scikit-image's pictures): {sum(flagged)} of {len(flagged)} flagged "
        f"({100 * np.mean(flagged):.0f}%)"
    )
    print("\n".join("  " + r for r in rows))
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

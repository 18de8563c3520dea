"""The paper's Table 4, reproduced: scan orders and the prototype module, compared on the shift split with paired
intervals (docs/scan-order.md says how the rows are trained and what counts).

    python bench/scan_table.py score weights/ablations/zhanglab128-e10-*.safetensors
    python bench/scan_table.py table zhanglab128-e10
    python bench/scan_table.py score --split val weights/ablations/lgg128-e10-*.safetensors   # in-pool, for reading
    python bench/scan_table.py table --split val lgg128-e10

``score`` scores a row's shift-split images with the maps' peak alone (the same weights for every row, so the
comparison is of the maps) and keeps every image's score, plus pixel AUROC where the images have masks, in
``docs/ablations/<row>.scores.json``: the paired differences can be computed again after the weights are gone.
``table`` reads those files for one prefix and prints the table, each row against the Circular-Hilbert row.
``--split val`` does the same on the in-pool validation split (``<row>.val.scores.json``): the plan reports the
shift split; the in-pool table says whether the two splits agree.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spmamba.checkpoint import read_metadata  # noqa: E402
from spmamba.data import data_root, discover, load_masks  # noqa: E402
from spmamba.inference import Predictor  # noqa: E402
from spmamba.metrics import auroc_gain_interval, auroc_interval, pixel_report  # noqa: E402
from spmamba.scoring import ScoreWeights  # noqa: E402

RECORDS = ROOT / "docs" / "ablations"
BASE = "circular-hilbert"
ROWS = {
    "circular-hilbert": "Circular-Hilbert (the paper's)",
    "raster": "raster",
    "boustrophedon": "boustrophedon",
    "hilbert": "Hilbert",
    "no-prototypes": "Circular-Hilbert, prototype module off",
    "circular-hilbert-seed1": "Circular-Hilbert again, seed 1 (the training run's own spread)",
    "raster-seed1": "raster again, seed 1",
    "no-prototypes-seed1": "prototype module off again, seed 1",
}


SPLITS = {"shift": ("shift_val", "Shift split", ""), "val": ("val", "In-pool validation split", ".val")}


def records(row: str, split: str) -> Path:
    return RECORDS / f"{row}{SPLITS[split][2]}.scores.json"


def score(checkpoint: Path, data: Path | None, split: str = "shift") -> Path:
    """Every image's max-only score on ``split`` under ``checkpoint``, with its pixel AUROC where masks exist."""
    meta = read_metadata(checkpoint)
    folder = data or data_root() / meta["training"]["data_path_name"]
    images = getattr(discover(folder, seed=meta["training"]["options"]["seed"]), SPLITS[split][0])
    model = Predictor(checkpoint)
    maps = model.maps_for_samples(images, desc=checkpoint.stem)
    scores = model.score(maps, ScoreWeights.max_only())
    record = {
        "checkpoint": checkpoint.name,
        "split": split,
        "weights": "max-only",
        "files": [s.path.name for s in images],
        "labels": [int(s.label) for s in images],
        "scores": [float(x) for x in scores.total.numpy()],
        "train_seconds": meta["training"].get("train_seconds"),
    }
    masks = load_masks(images, model.image_size)
    if masks is not None:
        record["pixel"] = pixel_report(scores.anomaly_map.numpy(), masks.numpy())
    out = records(checkpoint.stem, split)
    out.write_text(json.dumps(record) + "\n")
    return out


def auroc_cell(scores: np.ndarray, labels: np.ndarray) -> str:
    lo, hi = auroc_interval(scores, labels)
    return f"{100 * roc_auc_score(labels, scores):.1f} ({100 * lo:.1f}–{100 * hi:.1f})"


def gain_cell(scores: np.ndarray, base: np.ndarray, labels: np.ndarray) -> str:
    d, lo, hi = auroc_gain_interval(scores, base, labels)
    return f"{100 * d:+.1f} ({100 * lo:+.1f} to {100 * hi:+.1f})"


def table(prefix: str, split: str = "shift") -> str:
    """The markdown table of every row scored for ``prefix`` on ``split``, each against its Circular-Hilbert row."""
    rows = {k: json.loads(p.read_text()) for k in ROWS if (p := records(f"{prefix}-{k}", split)).is_file()}
    if BASE not in rows:
        raise SystemExit(f"no {records(f'{prefix}-{BASE}', split).name} in {RECORDS}: score that row first")
    base = rows[BASE]
    labels = np.array(base["labels"])
    pixel = "pixel" in base
    head = "| row | image AUROC (95% CI) | − Circular-Hilbert (paired 95% CI) |"
    head += " pixel AUROC (95% CI) |" if pixel else ""
    head += " training minutes |"
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for key, row in rows.items():
        if row["files"] != base["files"]:
            raise SystemExit(f"{key} was scored on other images than the Circular-Hilbert row")
        s = np.array(row["scores"])
        cells = [ROWS[key], auroc_cell(s, labels)]
        cells.append("–" if key == BASE else gain_cell(s, np.array(base["scores"]), labels))
        if pixel:
            p = row["pixel"]
            cells.append(
                f"{100 * p['pixel_auroc']:.1f} ({100 * p['pixel_auroc_ci95'][0]:.1f}–"
                f"{100 * p['pixel_auroc_ci95'][1]:.1f})"
            )
        minutes = row.get("train_seconds")
        cells.append(f"{minutes / 60:.0f}" if minutes else "–")
        out.append("| " + " | ".join(cells) + " |")
    n0, n1 = int((labels == 0).sum()), int((labels == 1).sum())
    where = SPLITS[split][1]
    return "\n".join(out) + f"\n\n{where}: {n0} normal / {n1} abnormal images; scores: the maps' peak alone.\n"


def pair(a: str, b: str, split: str = "shift") -> str:
    """Two scored checkpoints (record stems) on the same images: each AUROC and a's paired gain over b.

    A comma-separated group (``row,row-seed1``) stands for several runs of one recipe: their mean AUROC is compared.
    """
    groups = {name: [json.loads(records(stem, split).read_text()) for stem in name.split(",")] for name in (a, b)}
    files = groups[a][0]["files"]
    if any(r["files"] != files for rs in groups.values() for r in rs):
        raise SystemExit(f"{a} and {b} were scored on different images")
    labels = np.array(groups[a][0]["labels"])
    scores = {name: np.array([r["scores"] for r in rs]) for name, rs in groups.items()}
    lines = [
        f"{stem}: AUROC {auroc_cell(s, labels)}"
        for name in (a, b)
        for stem, s in zip(name.split(","), scores[name], strict=True)
    ]
    lines.append(f"{a} − {b}: {gain_cell(scores[a], scores[b], labels)} on the {SPLITS[split][1].lower()}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sc = sub.add_parser("score")
    sc.add_argument("checkpoints", nargs="+", type=Path)
    sc.add_argument("--data", type=Path, default=None, help="dataset root (default: $SPMAMBA_DATA/<its data>)")
    tb = sub.add_parser("table")
    tb.add_argument("prefix")
    pr = sub.add_parser("pair", help="two scored checkpoints' paired AUROC difference (record stems, or a,b groups)")
    pr.add_argument("a")
    pr.add_argument("b")
    for p in (sc, tb, pr):
        p.add_argument("--split", choices=SPLITS, default="shift", help="shift (the plan's) or val (in-pool)")
    args = ap.parse_args()
    if args.cmd == "score":
        for path in args.checkpoints:
            print(score(path, args.data, args.split))
    elif args.cmd == "pair":
        print(pair(args.a, args.b, args.split))
    else:
        print(table(args.prefix, args.split))


if __name__ == "__main__":
    main()

"""``spmamba seg train | evaluate | predict``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def _line(v: dict) -> str:
    return f"DICE={v['dice']:.3f} IOU={v['iou']:.3f} HD95={v['hd95']:.1f}"


def _with_ci(v: dict, key: str, fmt: str) -> str:
    lo, hi = v[f"{key}_ci95"]
    return f"{key} {v[key]:{fmt}} (95% CI {lo:{fmt}}-{hi:{fmt}})"


def cmd_seg_train(args: argparse.Namespace) -> int:
    from ..checkpoint import CheckpointError
    from .train import SegTrainOptions, train_seg

    if not args.data:
        print("pass the folder with images/ and masks/ to train on", file=sys.stderr)
        return 2
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SegTrainOptions)}
    opts = SegTrainOptions(**{**values, "modalities": tuple(values["modalities"])})
    try:
        v = train_seg(opts)["validation"]
    except CheckpointError as err:  # a network the options cannot build, or a train state that does not fit
        print(f"cannot train: {err}", file=sys.stderr)
        return 2
    print(f"validation {_with_ci(v, 'dice', '.3f')}, {_with_ci(v, 'iou', '.3f')}, {_with_ci(v, 'hd95', '.1f')} px")
    print(f"{_line(v)} -> {args.out}")
    return 0


def cmd_seg_evaluate(args: argparse.Namespace) -> int:
    from ..data import segmentation_pairs
    from .inference import Segmenter
    from .train import summarise

    segmenter = Segmenter.load(args.checkpoint)
    pairs = [(img, mask) for img, mask in segmentation_pairs(args.folder)]
    missing = [img.name for img, mask in pairs if mask is None]
    if missing:
        print(f"{len(missing)} image(s) without a mask are skipped, e.g. {missing[0]}", file=sys.stderr)
    rows = [{"image": img.name, **segmenter.scores(img, mask)} for img, mask in pairs if mask is not None]
    if not rows:
        print(f"{args.folder}: no image with a mask", file=sys.stderr)
        return 2
    for r in rows:
        print(f"{r['image']}: Dice {r['dice']:.3f} IoU {r['iou']:.3f} HD95 {r['hd95']:.1f}")
    v = summarise(rows)
    print(
        f"{v['n']} images ({v['groups']} {v['resampled']}, the bootstrap's unit): {_with_ci(v, 'dice', '.3f')}, "
        f"{_with_ci(v, 'iou', '.3f')}, {_with_ci(v, 'hd95', '.1f')} px"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": v, "per_image": rows}, indent=2))
    print(_line(v))
    return 0


def cmd_seg_predict(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..archive import read_inputs
    from ..export import export_mask, mask_folder
    from ..imaging import ImageLoadError
    from ..pipeline import SEGMENT, Pipeline, get_segmenter

    files, checkpoint = list(args.files), args.checkpoint
    if files and files[0].endswith(".safetensors"):  # the older spelling: the checkpoint first
        checkpoint, files = files[0], files[1:]
    if args.table:
        from ..archive import SEGMENT as FAMILY
        from ..cli import score_archive

        args.files, args.checkpoint = files, checkpoint
        return score_archive(args, FAMILY)
    files = [item.file for item in read_inputs(files)]
    pipe = Pipeline({}, {checkpoint: checkpoint} if checkpoint else None)
    if not pipe.seg_checkpoints:
        from ..hub import NO_WEIGHTS

        print(f"no segmentation checkpoint; {NO_WEIGHTS}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results, failed = [], 0
    for name in files:
        try:
            ready = pipe.prepare(name, family=SEGMENT, chosen=checkpoint, keep=bool(checkpoint))
        except ImageLoadError as err:
            print(f"{name}: cannot be read: {err}", file=sys.stderr)
            failed += 1
            continue
        segmenter = get_segmenter(ready.route.path)
        prob = segmenter.probabilities(ready.image.pixels)
        mask = prob >= segmenter.threshold
        result = {
            "file": name,
            "checkpoint": Path(ready.route.path).stem,
            "lesion_pixels": int(mask.sum()),
            "share_of_image": float(mask.mean()),
            **ready.route.to_dict(),
            "notes": ready.route.notes,
        }
        if out:
            folder = mask_folder(out, name)
            written, notes = export_mask(mask, name, ready.image.meta, folder, result["checkpoint"], __version__)
            result["masks"], result["notes"] = [str(f) for f in written], result["notes"] + notes
        results.append(result)
        if not args.json:
            print(
                f"{name}: lesion {result['lesion_pixels']} px ({100 * result['share_of_image']:.1f}% of the image) "
                f"[{result['checkpoint']}]"
            )
            for line in [result["looks_like"], *result["notes"]]:
                if line:
                    print(f"  {line}")
            if out:
                print(f"  mask: {', '.join(result['masks'])}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def add_seg_parser(sub, add_options) -> None:
    from ..cli import add_archive_options
    from .train import SegTrainOptions

    seg = sub.add_parser("seg", help="Mamba-MIS lesion segmentation").add_subparsers(dest="seg_command", required=True)
    tr = seg.add_parser("train", help="train Mamba-MIS (or the U-Net baseline) on images/ + masks/")
    add_options(tr, SegTrainOptions)
    tr.set_defaults(func=cmd_seg_train)
    ev = seg.add_parser("evaluate", help="per-image Dice, IoU, HD95 and their means on images/ + masks/")
    ev.add_argument("checkpoint")
    ev.add_argument("folder", help="folder with images/ and masks/ (same file names)")
    ev.add_argument("--json", default=None, help="write per-image and mean figures here")
    ev.set_defaults(func=cmd_seg_evaluate)
    pr = seg.add_parser(
        "predict", help="segment image files (each routed to the checkpoint it resembles); lesion area; mask PNGs"
    )
    pr.add_argument(
        "files", nargs="+", metavar="FILE", help="image files or folders (an older spelling puts a checkpoint first)"
    )
    pr.add_argument("--checkpoint", default=None, help="use this checkpoint for every file")
    pr.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write each file's mask here (a folder per file, named by a digest of its path): PNG, and NIfTI or "
        "DICOM SEG for those inputs; with --table the rows name the files",
    )
    pr.add_argument("--json", action="store_true")
    add_archive_options(pr)
    pr.set_defaults(func=cmd_seg_predict)

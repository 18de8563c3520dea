"""``spmamba`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

from .hub import is_hub_reference, resolve_checkpoint

PAPER_PARAMS_M, PAPER_GFLOPS = 25.8, 8.3


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from .model import SPMamba, SPMambaConfig
    from .profiling import model_cost
    from .ssm import backend_name

    cfg = SPMambaConfig.preset(args.config)
    if args.image_size:
        cfg = dataclasses.replace(cfg, image_size=args.image_size)  # re-validates
    model = SPMamba(cfg, encoder_weights=None)
    cost = model_cost(model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = [
        (
            "config",
            f"{args.config}: encoder {cfg.encoder}, {cfg.image_size}x{cfg.image_size}, depths "
            f"{list(cfg.depths)}, K={cfg.prototype_banks}, p={cfg.prototype_window}, "
            f"{cfg.scan_order} scan x {cfg.num_directions} directions, d_state {cfg.d_state}",
        ),
        ("encoder params (frozen)", f"{cost.encoder_params / 1e6:.2f} M"),
        ("trainable params", f"{cost.trainable_params / 1e6:.2f} M"),
        ("total params", f"{cost.total_params / 1e6:.2f} M   (paper: {PAPER_PARAMS_M} M)"),
        (
            "GFLOPs (multiply-adds)",
            f"{cost.gmacs:.2f}   (paper: {PAPER_GFLOPS}; dense {cost.dense_macs / 1e9:.2f} "
            f"+ selective scans {cost.scan_macs / 1e9:.2f})",
        ),
        ("selective-scan backend", f"{backend_name(device)} on {device}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .data import data_root
    from .train import TrainOptions, train

    if args.threads:
        torch.set_num_threads(args.threads)
    data = args.data or data_root()
    if data is None:
        print("no data folder: pass DATA or set SPMAMBA_DATA", file=sys.stderr)
        return 2
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainOptions)}
    opts = TrainOptions(**{**values, "data": str(data), "modalities": tuple(values["modalities"])})
    metrics = train(opts)["validation"]
    lo, hi = metrics["auroc_ci95"]
    print(
        f"validation AUROC={100 * metrics['auroc']:.1f} (95% CI {100 * lo:.1f}-{100 * hi:.1f}) "
        f"ACC={100 * metrics['accuracy']:.1f} F1={100 * metrics['f1']:.1f} -> {args.out}"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    import torch
    from PIL import Image

    from .archive import ANOMALY, read_inputs
    from .imaging import ImageLoadError, is_nifti
    from .pipeline import Pipeline, get_predictor, report
    from .visualize import overlay_own_range

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.table:
        return score_archive(args, ANOMALY)
    pipe = Pipeline({args.checkpoint: args.checkpoint} if args.checkpoint else None, {})
    if not pipe.checkpoints:
        from .hub import NO_WEIGHTS

        print(NO_WEIGHTS, file=sys.stderr)
        return 2
    reports, failed = [], 0
    args.files = [item.file for item in read_inputs(args.files)]
    if args.overlay:
        Path(args.overlay).mkdir(parents=True, exist_ok=True)
    volumes = [[f] for f in args.files if is_nifti(f)]
    if args.series:
        volumes.append([f for f in args.files if not is_nifti(f)])
    for files in volumes:
        rep = _predict_volume(files, pipe, args)
        failed += rep is None
        reports += [rep] if rep else []
    singles = [] if args.series else [f for f in args.files if not is_nifti(f)]
    for name in singles:
        try:
            ready = pipe.prepare(name, chosen=args.checkpoint, keep=bool(args.checkpoint))
        except ImageLoadError as err:
            print(f"{name}: cannot be read: {err}", file=sys.stderr)
            failed += 1
            continue
        p = get_predictor(ready.route.path)
        scores = p.score(p.maps([ready.image.grey]))
        rep = {"file": name, **report(p, scores, ready)}
        reports.append(rep)
        if args.overlay:
            out = Path(args.overlay) / (Path(name).name.split(".")[0] + "-overlay.png")
            Image.fromarray(overlay_own_range(ready.image.grey, scores.anomaly_map[0].numpy())).save(out)
            rep["overlay"] = str(out)
        if not args.json:
            s, pct = rep["scores"], rep["percentile_among_normal"]
            place = f", higher than {pct:.0f}% of normal validation images" if pct is not None else ""
            print(f"{name}: score {s['total']:.4g} — {rep['verdict']}{place} [{rep['checkpoint']}]")
            if rep["looks_like"]:
                print(f"  {rep['looks_like']}")
            print(
                f"  reconstruction {s['reconstruction']:.4g} · prototype distance {s['prototype']:.4g} · "
                f"concentration {s['concentration']:.4g} · contrast {s['contrast']:.4g}"
            )
            for n in rep["notes"]:
                print(f"  note: {n}")
    if args.json:
        print(json.dumps(reports, indent=2))
    return 1 if failed else 0


def score_archive(args: argparse.Namespace, family: str) -> int:
    """``--table``: every file, folder and manifest entry scored into one CSV/Parquet table, row by row, here or
    on a Dask cluster; a failed file is a row with its reason."""
    from .archive import Job, read_inputs, run

    items = read_inputs(args.files)
    try:
        job = Job(family, args.checkpoint, masks=getattr(args, "out", None))  # seg predict --out: the masks too
        s = run(items, job, args.table, args.resume, args.workers, args.scheduler, args.chunk)
    except FileExistsError as err:
        print(err, file=sys.stderr)
        return 2
    print(
        f"{s.files} files: {s.scored} scored, {s.failed} failed, {s.skipped} already in {args.table}; "
        f"{s.images_per_s:.1f} images/s -> {args.table}"
    )
    return 1 if s.failed else 0


def add_archive_options(parser: argparse.ArgumentParser) -> None:
    """The options of scoring an archive, shared by ``predict`` and ``seg predict``."""
    parser.add_argument(
        "--table",
        default=None,
        metavar="FILE",
        help="write one row per file to this .csv or .parquet (a folder of parts), as files finish; manifests "
        "(CSV/Parquet with path[,label][,mask]) are read as lists of files",
    )
    parser.add_argument("--resume", action="store_true", help="skip the files the --table output already holds")
    parser.add_argument("--workers", type=int, default=None, help="score on a local Dask cluster of N processes")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS", help="score on this Dask cluster")
    parser.add_argument("--chunk", type=int, default=16, help="files per task (and per network call)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from .evaluate import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    r = evaluate(
        args.checkpoint,
        args.folder,
        args.batch_size,
        args.json,
        args.roc,
        args.encoder_weights,
        args.csv,
        args.workers,
        args.scheduler,
    )
    im = r["image"]
    print(f"{r['n_normal']} normal, {r['n_abnormal']} abnormal images; score weights {r['score_weights']}")

    def ci(d: dict, key: str) -> str:
        lo, hi = d[f"{key}_ci95"]
        return f"{100 * d[key]:.1f} (95% CI {100 * lo:.1f}-{100 * hi:.1f})"

    at = f"; at the validation threshold ACC {ci(im, 'accuracy')}, F1 {ci(im, 'f1')}" if "accuracy" in im else ""
    print(f"image AUROC {ci(im, 'auroc')}, AP {ci(im, 'ap')}{at}")
    print(
        f"AP={100 * im['ap']:.1f}  test-oracle ACC={100 * im['oracle_accuracy']:.1f} "
        f"F1={100 * im['oracle_f1']:.1f} (threshold chosen on this folder; paper's protocol, comparison only)"
    )
    if "normal_flagged_rate" in r:
        print(f"normal images at or above the validation threshold: {100 * r['normal_flagged_rate']:.1f}%")
    for name, auc in r["ablation_auroc"].items():
        print(f"  ablation {name:<16} AUROC={100 * auc:.1f}")
    last = f"AUROC={100 * im['auroc']:.1f} "
    last += f"ACC={100 * im['accuracy']:.1f} F1={100 * im['f1']:.1f}" if "accuracy" in im else "ACC=n/a F1=n/a"
    if "pixel" in r:
        px = r["pixel"]
        print(
            f"pixel AUROC={ci(px, 'pixel_auroc')} AP={100 * px['pixel_ap']:.1f} "
            f"F1-max={100 * px['pixel_f1_max']:.1f} AUPRO(30% FPR)={100 * px['aupro']:.1f} "
            f"(at {px['resolution']}x{px['resolution']}, all images of the folder)"
        )
        last += f" PIXEL_AUROC={100 * px['pixel_auroc']:.1f}"
    if "accuracy" not in im:
        last += " (checkpoint has no calibrated threshold)"
    print(last)
    return 0


def cmd_domain(args: argparse.Namespace) -> int:
    """Describe each checkpoint's training images in the shared embedding and store that in the checkpoint."""
    import numpy as np

    from .checkpoint import read_raw_metadata
    from .data import data_root
    from .domain import dataset_images, describe, write_domain

    data = args.data or data_root()
    if data is None:
        print("no data folder: pass --data or set SPMAMBA_DATA", file=sys.stderr)
        return 2
    described: dict[tuple, object] = {}  # checkpoints of one dataset and family share a description
    for path in args.checkpoints:
        meta = read_raw_metadata(path)
        key = (meta["format"], meta.get("training", {}).get("data_path_name"))
        if key not in described:
            described[key] = describe(*dataset_images(meta, data))
        dom = described[key]
        write_domain(path, dom)
        print(
            f"{Path(path).name}: {dom.n_train} training images, limit {dom.limit:.2f} "
            f"(validation median {float(np.median(dom.val_distances)):.2f})"
        )
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Out-of-fold calibration of a checkpoint's threshold (spmamba.oof), written into the checkpoint."""
    from .checkpoint import read_metadata
    from .data import data_root
    from .oof import out_of_fold_calibration, train_fold, write_calibration

    root = data_root()
    if args.data is None and root is None:
        print("no data folder: pass DATA or set SPMAMBA_DATA", file=sys.stderr)
        return 2
    folder = Path(args.data) if args.data else root / read_metadata(args.checkpoint)["training"]["data_path_name"]
    if args.fold is not None:
        if not 0 <= args.fold < args.folds:
            print(f"--fold must be between 0 and {args.folds - 1}", file=sys.stderr)
            return 2
        model = train_fold(args.checkpoint, folder, args.fold, args.folds, args.workdir)
        print(f"fold {args.fold} of {args.folds}: {model}")
        return 0
    cal = out_of_fold_calibration(args.checkpoint, folder, args.folds, args.workdir)
    write_calibration(args.checkpoint, cal)
    fpr, tpr = cal["val_false_positive_rate"], cal["val_true_positive_rate"]
    (flo, fhi), (tlo, thi) = cal["val_false_positive_rate_ci95"], cal["val_true_positive_rate_ci95"]
    print(
        f"out-of-fold threshold {cal['threshold']:.4g} from {cal['out_of_fold']['n_normal']} training normals "
        f"({args.folds} folds); on validation it flags {100 * fpr:.1f}% ({100 * flo:.1f}-{100 * fhi:.1f}%) of "
        f"normals and {100 * tpr:.1f}% ({100 * tlo:.1f}-{100 * thi:.1f}%) of abnormal images -> {args.checkpoint}"
    )
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    """The card goes through huggingface_hub's ModelCard, whose parser the Hub uses: a header it cannot read
    fails here, not on upload."""
    from huggingface_hub import ModelCard

    from .card import GENERATED_END, render_card

    text = render_card(args.checkpoint)
    if not args.out:
        print(ModelCard(text).content)
        return 0
    out = Path(args.out)
    notes = out.read_text().split(GENERATED_END, 1)[1] if out.is_file() and GENERATED_END in out.read_text() else "\n"
    ModelCard(text.removesuffix("\n") + notes).save(out)
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from .datacheck import check, format_report

    report = check(args.folder)
    print(format_report(report, args.limit))
    return 1 if report.problems else 0


def _predict_volume(files: list[str], pipe, args: argparse.Namespace) -> dict | None:
    """One volume (a NIfTI file, or the DICOM files of one series): per-slice scores and the highest slice,
    printed unless ``--json``; None when it cannot be read."""
    from .imaging import ImageLoadError
    from .pipeline import get_predictor, volume_result
    from .volume import save_map_nifti, volume_maps, volume_scores

    name = files[0] if len(files) == 1 else f"series of {len(files)} files"
    try:
        ready = pipe.prepare_volume(files, chosen=args.checkpoint, keep=bool(args.checkpoint))
    except ImageLoadError as err:
        print(f"{name}: cannot be read: {err}", file=sys.stderr)
        return None
    p = get_predictor(ready.route.path)
    if args.overlay and ready.volume.affine is not None:  # the map volume needs every slice's maps at once
        maps = volume_maps(p, ready.volume)
        report = {"file": name, **volume_result(p, p.score(maps), ready)}
        out = Path(args.overlay) / (Path(files[0]).name.split(".")[0] + "-anomaly-map.nii.gz")
        report["map"] = str(save_map_nifti(ready.volume, maps, p.weights, out))
    else:
        report = {"file": name, **volume_result(p, volume_scores(p, ready.volume), ready)}
    if args.json:
        return report
    top = report["per_slice"][report["highest_slice"]]
    above = report["slices_above_threshold"]
    print(
        f"{name}: {report['slices']} slices; highest: {top['label']} (index {report['highest_slice']}), score "
        f"{top['total']:.4g} — {report['verdict_for_highest']['verdict']}"
        + (f"; {above} slice(s) at or above the threshold" if above is not None else "")
        + f" [{report['checkpoint']}]"
    )
    for row in report["per_slice"]:
        shown = "blank" if row["blank"] else f"{row['total']:.4g}{'  *' if row['above_threshold'] else ''}"
        shown += "  (nearly blank)" if row["nearly_blank"] and not row["blank"] else ""
        print(f"  {row['label']}: {shown}")
    for n in report["notes"]:
        print(f"  note: {n}")
    return report


def add_options(parser: argparse.ArgumentParser, options: type) -> None:
    """One argument per dataclass field, with the field's default and help: the defaults live in one place.

    ``data`` becomes an optional positional and ``out`` a required ``--out``; booleans that default to
    True become ``--no-<name>``; tuples take several values.
    """
    hints = typing.get_type_hints(options)
    for f in dataclasses.fields(options):
        kind, meta = hints[f.name], dict(f.metadata)
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        if f.name == "data":
            parser.add_argument("data", nargs="?", help=meta["help"])
        elif f.name == "out":
            parser.add_argument("--out", required=True, help=meta["help"])
        elif kind is bool:
            name = f"--no-{f.name.replace('_', '-')}" if f.default else flag
            parser.add_argument(
                name,
                dest=f.name,
                action="store_false" if f.default else "store_true",
                help=("turn off: " if f.default else "") + meta["help"],
            )
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(flag, dest=f.name, nargs="*", default=list(f.default), help=meta["help"])
        else:
            base = next(t for t in typing.get_args(kind) or (kind,) if t is not type(None))
            shown = "" if f.default is None or "default" in meta["help"] else f" (default {f.default})"
            parser.add_argument(
                flag, dest=f.name, type=base, default=f.default, choices=meta.get("choices"), help=meta["help"] + shown
            )


def build_parser() -> argparse.ArgumentParser:
    from .model import PRESETS
    from .train import TrainOptions

    parser = argparse.ArgumentParser(prog="spmamba", description="SP-Mamba medical anomaly detection")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="parameter counts and GFLOPs of a configuration")
    info.add_argument("--config", default="paper", choices=sorted(PRESETS))
    info.add_argument("--image-size", type=int, default=None, help="override the input size (default: config's)")
    info.set_defaults(func=cmd_info)

    tr = sub.add_parser("train", help="train on normal images; select and calibrate on validation")
    add_options(tr, TrainOptions)
    tr.add_argument("--threads", type=int, default=None)
    tr.set_defaults(func=cmd_train)

    pr = sub.add_parser("predict", help="score image files as the demo does: verdict, percentile, components")
    pr.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="PNG/JPEG/TIFF or DICOM files, or folders of them (recursive); a NIfTI file is scored slice by slice "
        "as a volume",
    )
    pr.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint to use (default: the one in weights/ trained on the image's modality)",
    )
    pr.add_argument("--json", action="store_true", help="print the results as JSON, as /analyze returns them")
    pr.add_argument(
        "--overlay",
        default=None,
        metavar="DIR",
        help="write each anomaly-map overlay PNG here (for a NIfTI volume: the map volume, aligned with it)",
    )
    pr.add_argument("--series", action="store_true", help="the DICOM files given form one series: score it as a volume")
    pr.add_argument("--threads", type=int, default=None)
    add_archive_options(pr)
    pr.set_defaults(func=cmd_predict)

    ev = sub.add_parser("evaluate", help="image/pixel metrics of a checkpoint on a labelled folder")
    ev.add_argument("checkpoint")
    ev.add_argument(
        "folder",
        help="folder with NORMAL/ and PNEUMONIA/ (or good/ and Ungood/) sub-folders, or a CSV of path,label[,mask]",
    )
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--json", default=None, help="write the full results here, every image's score included")
    ev.add_argument(
        "--csv", default=None, help="write every image's score and components here (file, label, total, ...)"
    )
    ev.add_argument(
        "--roc", default=None, help="write ROC and precision-recall curves (image; pixel where masks exist) PNG here"
    )
    ev.add_argument("--encoder-weights", default="imagenet")
    ev.add_argument("--threads", type=int, default=None)
    ev.add_argument("--workers", type=int, default=None, help="score on a local Dask cluster of N processes")
    ev.add_argument("--scheduler", default=None, metavar="ADDRESS", help="score on this Dask cluster")
    ev.set_defaults(func=cmd_evaluate)

    from .seg.cli import add_seg_parser

    add_seg_parser(sub, add_options)

    cal = sub.add_parser(
        "calibrate",
        help="set a checkpoint's threshold from out-of-fold scores of its training normals (k models, its recipe)",
    )
    cal.add_argument("checkpoint")
    cal.add_argument("data", nargs="?", help="dataset root (default: $SPMAMBA_DATA/<the checkpoint's data>)")
    cal.add_argument("--folds", type=int, default=5)
    cal.add_argument("--workdir", default="runs/oof", help="where the fold models are kept (resumable)")
    cal.add_argument(
        "--fold",
        type=int,
        help="train this fold's model only and stop (run several at once, one fold each; then run without it)",
    )
    cal.set_defaults(func=cmd_calibrate)

    dom = sub.add_parser(
        "domain",
        help="store what each checkpoint's training images look like (for routing and the out-of-domain check)",
    )
    dom.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT")
    dom.add_argument(
        "--data", default=None, help="dataset folder holding the checkpoints' datasets; default $SPMAMBA_DATA"
    )
    dom.set_defaults(func=cmd_domain)

    # parsed by the app itself (main passes everything after "demo" on), listed here for --help
    sub.add_parser("demo", help="start the Gradio app, as python app.py does in a checkout (spmamba demo -h)")

    card = sub.add_parser("card", help="write a checkpoint's Hugging Face model card from its metadata")
    card.add_argument("checkpoint")
    card.add_argument(
        "--out", default=None, help="write here (default: print); notes below the generated part are kept"
    )
    card.set_defaults(func=cmd_card)

    data = sub.add_parser("data", help="dataset tools").add_subparsers(dest="data_command", required=True)
    dc = data.add_parser(
        "check",
        help="counts per split and class, missing or orphan masks, unreadable files, identical images and "
        "patients shared across splits; exit status 1 when any problem is found",
    )
    dc.add_argument("folder", help="dataset root (train/, val/, ... or images/ + masks/)")
    dc.add_argument("--limit", type=int, default=10, help="examples listed per kind of problem")
    dc.set_defaults(func=cmd_data_check)
    return parser


def resolve_references(args: argparse.Namespace) -> None:
    """Hub references among the checkpoint arguments become files in the Hub cache before a command reads them.
    Not for a run on a remote Dask scheduler: its workers resolve the reference on their own machines."""
    single, several = getattr(args, "checkpoint", None), getattr(args, "checkpoints", None) or []
    if getattr(args, "scheduler", None) or not any(is_hub_reference(c) for c in [single, *several] if c):
        return
    if single:
        args.checkpoint = resolve_checkpoint(single)
    if several:
        args.checkpoints = [resolve_checkpoint(c) for c in several]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:
        from .demo.app import main as serve

        serve(argv[1:])
        return 0
    args = build_parser().parse_args(argv)
    try:
        resolve_references(args)
    except ValueError as err:  # CheckpointError: a reference that is malformed, not cached offline, or unknown
        print(err, file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

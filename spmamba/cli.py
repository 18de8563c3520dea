"""``spmamba`` command line."""
from __future__ import annotations

import argparse
import dataclasses
import sys

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
        ("config", f"{args.config}: encoder {cfg.encoder}, {cfg.image_size}x{cfg.image_size}, depths "
                   f"{list(cfg.depths)}, K={cfg.prototype_banks}, p={cfg.prototype_window}, "
                   f"{cfg.scan_order} scan x {cfg.num_directions} directions, d_state {cfg.d_state}"),
        ("encoder params (frozen)", f"{cost.encoder_params / 1e6:.2f} M"),
        ("trainable params", f"{cost.trainable_params / 1e6:.2f} M"),
        ("total params", f"{cost.total_params / 1e6:.2f} M   (paper: {PAPER_PARAMS_M} M)"),
        ("GFLOPs (multiply-adds)", f"{cost.gmacs:.2f}   (paper: {PAPER_GFLOPS}; dense {cost.dense_macs / 1e9:.2f} "
                                   f"+ selective scans {cost.scan_macs / 1e9:.2f})"),
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
    opts = TrainOptions(data=str(data), out=args.out, config=args.config, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, seed=args.seed, feature_cache=not args.no_feature_cache,
                        resume=args.resume, max_train=args.max_train, max_val=args.max_val,
                        encoder_weights=args.encoder_weights, dataset_name=args.dataset_name,
                        modalities=tuple(args.modality))
    metrics = train(opts)["validation"]
    print(f"validation AUROC={100 * metrics['auroc']:.1f} ACC={100 * metrics['accuracy']:.1f} "
          f"F1={100 * metrics['f1']:.1f} -> {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from .evaluate import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    r = evaluate(args.checkpoint, args.folder, args.batch_size, args.json, args.roc, args.encoder_weights)
    im = r["image"]
    print(f"{r['n_normal']} normal, {r['n_abnormal']} abnormal images; score weights {r['score_weights']}")
    print(f"AP={100 * im['ap']:.1f}  test-oracle ACC={100 * im['oracle_accuracy']:.1f} "
          f"F1={100 * im['oracle_f1']:.1f} (threshold chosen on this folder; paper's protocol, comparison only)")
    for name, auc in r["ablation_auroc"].items():
        print(f"  ablation {name:<16} AUROC={100 * auc:.1f}")
    if "pixel" in r:
        px = r["pixel"]
        print(f"pixel AUROC={100 * px['pixel_auroc']:.1f} AP={100 * px['pixel_ap']:.1f} "
              f"F1-max={100 * px['pixel_f1_max']:.1f}")
    if "accuracy" not in im:
        print(f"AUROC={100 * im['auroc']:.1f} ACC=n/a F1=n/a (checkpoint has no calibrated threshold)")
        return 0
    print(f"AUROC={100 * im['auroc']:.1f} ACC={100 * im['accuracy']:.1f} F1={100 * im['f1']:.1f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .model import PRESETS

    parser = argparse.ArgumentParser(prog="spmamba", description="SP-Mamba medical anomaly detection")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="parameter counts and GFLOPs of a configuration")
    info.add_argument("--config", default="paper", choices=sorted(PRESETS))
    info.add_argument("--image-size", type=int, default=None, help="override the input size (default: config's)")
    info.set_defaults(func=cmd_info)

    tr = sub.add_parser("train", help="train on normal images; select and calibrate on validation")
    tr.add_argument("data", nargs="?", help="dataset root (train/NORMAL, val/...); default $SPMAMBA_DATA")
    tr.add_argument("--out", required=True, help="checkpoint to write (.safetensors)")
    tr.add_argument("--config", default="cpu-lite0", choices=sorted(PRESETS))
    tr.add_argument("--epochs", type=int, default=20)
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=None, help="default 0.005 x batch/16")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--no-feature-cache", action="store_true", help="run the encoder every epoch")
    tr.add_argument("--resume", action="store_true", help="continue from OUT's .train-state file")
    tr.add_argument("--max-train", type=int, default=None, help="seeded subset of training images")
    tr.add_argument("--max-val", type=int, default=None, help="seeded subset of validation images")
    tr.add_argument("--encoder-weights", default="imagenet", help="'imagenet' or a local weight file")
    tr.add_argument("--dataset-name", default=None, help="name recorded in the model card metadata")
    tr.add_argument("--modality", nargs="*", default=[], metavar="CODE",
                    help="DICOM Modality codes of the training images (e.g. CR DX); the demo preselects by them")
    tr.add_argument("--threads", type=int, default=None)
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="image/pixel metrics of a checkpoint on a labelled folder")
    ev.add_argument("checkpoint")
    ev.add_argument("folder", help="folder with NORMAL/ and PNEUMONIA/ (or good/ and Ungood/) sub-folders")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--json", default=None, help="write the full results here")
    ev.add_argument("--roc", default=None, help="write the ROC curve PNG here")
    ev.add_argument("--encoder-weights", default="imagenet")
    ev.add_argument("--threads", type=int, default=None)
    ev.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""``spmamba`` command line."""
from __future__ import annotations

import argparse
import sys

PAPER_PARAMS_M, PAPER_GFLOPS = 25.8, 8.3


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from .model import SPMamba, SPMambaConfig
    from .profiling import model_cost
    from .ssm import backend_name

    cfg = SPMambaConfig.preset(args.config)
    if args.image_size:
        cfg.image_size = args.image_size
        cfg.__post_init__()
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


def build_parser() -> argparse.ArgumentParser:
    from .model import PRESETS

    parser = argparse.ArgumentParser(prog="spmamba", description="SP-Mamba medical anomaly detection")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="parameter counts and GFLOPs of a configuration")
    info.add_argument("--config", default="paper", choices=sorted(PRESETS))
    info.add_argument("--image-size", type=int, default=None, help="override the input size (default: config's)")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

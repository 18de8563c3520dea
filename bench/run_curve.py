"""The validation curve of a training run, finished or still going: AUROC on the in-pool and the shift split
per validated epoch, and the training loss.

    python bench/run_curve.py runs/zhanglab128-e100.safetensors assets/zhanglab128-e100-curve.png

A finished run's history is in its checkpoint; a run still going keeps it in its train state beside the
checkpoint's path, which is read when the checkpoint is not there yet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spmamba.checkpoint import TRAIN_STATE_SUFFIX, read_metadata  # noqa: E402
from spmamba.evaluate import save_curve  # noqa: E402


def history(run: Path) -> tuple[list[dict], str]:
    """The run's per-epoch history, and a title naming its state."""
    if run.is_file():
        training = read_metadata(run)["training"]
        return training["history"], f"{run.stem}: finished, {training['epochs']} epochs"
    state = run.with_name(run.stem + TRAIN_STATE_SUFFIX)
    with safe_open(state, "pt") as fh:
        info = json.loads(fh.metadata()["train_state"])
    return info["history"], f"{run.stem}: still training, epoch {info['epoch']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="the run's checkpoint path (its --out)")
    ap.add_argument("out", type=Path, help="PNG to write")
    args = ap.parse_args()
    records, title = history(args.run)
    save_curve(records, args.out, title)
    print(f"{title} -> {args.out}")


if __name__ == "__main__":
    main()

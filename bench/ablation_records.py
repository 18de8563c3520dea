"""The record of research checkpoints kept out of the repository: their metadata and the command that retrains each.

    python bench/ablation_records.py weights/ablations/*.safetensors

Ablation and replication networks are research artefacts, not shipped (docs/ablations/README.md). Their weights
stay on the machine that trained them (``weights/ablations/`` is git-ignored); what the repository keeps is each
file's JSON metadata (configuration, options, per-epoch history, validation figures) as
``docs/ablations/<name>.json`` and one table of retraining commands, ``docs/ablations/COMMANDS.md``, so every
figure in the notes can be traced and each network trained again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from spmamba.card import command, reproducible  # noqa: E402
from spmamba.checkpoint import read_raw_metadata  # noqa: E402
from spmamba.seg.checkpoint import SEG_FORMAT  # noqa: E402
from spmamba.seg.train import SegTrainOptions  # noqa: E402

OUT = ROOT / "docs" / "ablations"


def retrain_command(meta: dict, name: str) -> str:
    """The command line that retrains the network ``meta`` describes into ``weights/ablations/<name>``."""
    out = f"weights/ablations/{name}"
    if meta["format"] == SEG_FORMAT:
        return command(reproducible(meta), out, "seg train", SegTrainOptions)
    return command(meta["training"], out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for path in args.checkpoints:
        (OUT / f"{path.stem}.json").write_text(json.dumps(read_raw_metadata(path), indent=1, sort_keys=True) + "\n")
    rows = []
    for record in sorted(r for r in OUT.glob("*.json") if not r.name.endswith(".scores.json")):  # scan_table's
        meta = json.loads(record.read_text())
        rows.append(f"| `{record.stem}` | `{retrain_command(meta, record.stem + '.safetensors')}` |")
    (OUT / "COMMANDS.md").write_text(
        "# Retraining the research checkpoints\n\n"
        "Written by `python bench/ablation_records.py` from the metadata beside this file. Each command trains the "
        "network again into the git-ignored `weights/ablations/`, where the notes' `bench/seg_table.py` commands "
        "read it. `$SPMAMBA_DATA` is the data folder (`../shared/data` in a checkout).\n\n"
        "| network | command |\n|---|---|\n" + "\n".join(rows) + "\n"
    )
    print(f"{len(rows)} records in {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Rule 6 (docs/experiments-shift.md): the earlier brain-MRI recipe (raw intensities, 14 epochs) trained with site
# HT held out, so that it can be compared with the 100-epoch default on the shift split, where the issue says
# choices are made. Resumable; outputs in runs/ (git-ignored), records in docs/ablations/. Run in the background:
#   OMP_NUM_THREADS=1 nohup bash bench/lgg_rule6.sh > runs/queue-rule6.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SPMAMBA_DATA:-../shared/data}"
mkdir -p runs

out=runs/lgg128-raw-e14.safetensors
if [ ! -f "$out" ]; then
  bash bench/carried.sh restore "$out"
  spmamba train "$DATA/lgg-flair" --out "$out" --config cpu-lite0 --epochs 14 --val-every 7 --keep last \
    --intensity raw --resume --dataset-name 'LGG FLAIR brain MRI (Buda et al. 2019, TCGA-LGG)' --modality MR
  bash bench/carried.sh drop "$out"
fi
for split in shift val; do
  python bench/scan_table.py score --split "$split" "$out"
  python bench/scan_table.py pair --split "$split" lgg128-raw-e14 lgg128-percentile-efficientnet_lite0
done

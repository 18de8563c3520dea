#!/usr/bin/env bash
# The unseen-patients issue's brain MRI queue (docs/experiments-shift.md, "Rule 1 for brain MRI"): the intensity
# pilots and the rule (bench/lgg_rule1.sh), then 100 epochs. It runs beside the chest queue (bench/long_runs.sh),
# one core each. Resumable like the chest queue. Outputs go to runs/ (git-ignored).
# Run in the background:
#   nohup bash bench/long_runs_lgg.sh > runs/queue-lgg.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SPMAMBA_DATA:-../shared/data}"
NAME='LGG FLAIR brain MRI (Buda et al. 2019, TCGA-LGG)'
mkdir -p runs

chosen=$(bash bench/lgg_rule1.sh)
echo "rule 1 (brain MRI) chooses intensity: $chosen"

out="runs/lgg128-e100.safetensors"
if [ ! -f "$out" ]; then
  bash bench/carried.sh restore "$out"  # a state committed at the end of an earlier session
  spmamba train "$DATA/lgg-flair" --out "$out" --config cpu-lite0 --epochs 100 --val-every 5 --keep last \
    --intensity "$chosen" --resume --dataset-name "$NAME" --modality MR
  bash bench/carried.sh drop "$out"  # the run has written its checkpoint
fi

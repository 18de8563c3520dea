#!/usr/bin/env bash
# The unseen-patients issue's training queue (docs/experiments-shift.md): rule 1's choice,
# then the long run. Resumable: an interrupted long run continues from its train state. Outputs go to runs/
# (git-ignored). Run in the background:
#   nohup bash bench/long_runs.sh > runs/queue.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SPMAMBA_DATA:-../shared/data}"
mkdir -p runs

# Rule 1's pilots (their commands and figures: docs/experiments-shift.md, "Rule 1's pilots so far") ran on
# 2026-12-04 and chose clahe.
chosen=clahe
echo "rule 1 chooses intensity: $chosen"

out="runs/zhanglab128-e100.safetensors"
if [ ! -f "$out" ]; then
  bash bench/carried.sh restore "$out"  # a state committed at the end of an earlier session
  spmamba train "$DATA/zhanglab" --out "$out" --config cpu-lite0 --epochs 100 --val-every 5 --keep last \
    --intensity "$chosen" --resume --dataset-name 'ZhangLab chest X-ray (Kermany et al. 2018)' --modality CR DX
  bash bench/carried.sh drop "$out"  # the run has written its checkpoint
fi

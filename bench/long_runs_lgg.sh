#!/usr/bin/env bash
# The unseen-patients issue's brain MRI queue (docs/experiments-shift.md, "Rule 1 for brain MRI"): it waits for
# the chest queue (bench/long_runs.sh) to finish, then runs the intensity pilots, applies the rule, and trains
# 100 epochs. Resumable like the chest queue. Outputs go to runs/ (git-ignored). Run in the background:
#   nohup bash bench/long_runs_lgg.sh > runs/queue-lgg.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SPMAMBA_DATA:-../shared/data}"
NAME='LGG FLAIR brain MRI (Buda et al. 2019, TCGA-LGG)'
mkdir -p runs

while pgrep -f "bench/long_runs.sh" > /dev/null; do sleep 300; done

for rule in raw percentile stretch equalize clahe; do
  out="runs/pilot-lgg128-$rule.safetensors"
  [ -f "$out" ] && continue
  spmamba train "$DATA/lgg-flair" --out "$out" --config cpu-lite0 --epochs 3 --val-every 3 --intensity "$rule" \
    --dataset-name "$NAME" --modality MR
done

chosen=$(python - <<'PY'
import json
rules = ("raw", "percentile", "stretch", "equalize", "clahe")
auc = {r: json.load(open(f"runs/pilot-lgg128-{r}.metrics.json"))["training"]["history"][-1]["shift_auroc_max_only"]
       for r in rules}
best = max(auc, key=auc.get)
print(best if auc[best] >= auc["raw"] + 0.010 else "raw")
PY
)
echo "rule 1 (brain MRI) chooses intensity: $chosen"

out="runs/lgg128-e100.safetensors"
if [ ! -f "$out" ]; then
  spmamba train "$DATA/lgg-flair" --out "$out" --config cpu-lite0 --epochs 100 --val-every 5 --keep last \
    --intensity "$chosen" --resume --dataset-name "$NAME" --modality MR
fi

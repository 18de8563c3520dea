#!/usr/bin/env bash
# The unseen-patients issue's training queue (docs/experiments-shift.md): pilots, the rule that reads them,
# then the long runs. Resumable: a finished step is skipped, an interrupted long run continues from its
# train state. Outputs go to runs/ (git-ignored). Run in the background:
#   nohup bash bench/long_runs.sh > runs/queue.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SPMAMBA_DATA:-../shared/data}"
mkdir -p runs

for rule in raw stretch equalize clahe; do
  out="runs/pilot-zhanglab128-$rule.safetensors"
  [ -f "$out" ] && continue
  spmamba train "$DATA/zhanglab" --out "$out" --config cpu-lite0 --epochs 3 --val-every 3 --intensity "$rule" \
    --dataset-name 'ZhangLab chest X-ray (Kermany et al. 2018)' --modality CR DX
done

chosen=$(python - <<'PY'
import json
auc = {r: json.load(open(f"runs/pilot-zhanglab128-{r}.metrics.json"))["training"]["history"][-1]["shift_auroc_max_only"]
       for r in ("raw", "stretch", "equalize", "clahe")}
best = max(auc, key=auc.get)
print(best if auc[best] >= auc["raw"] + 0.010 else "raw")
PY
)
echo "rule 1 chooses intensity: $chosen"

out="runs/zhanglab128-e100.safetensors"
if [ ! -f "$out" ]; then
  spmamba train "$DATA/zhanglab" --out "$out" --config cpu-lite0 --epochs 100 --val-every 5 --keep last \
    --intensity "$chosen" --resume --dataset-name 'ZhangLab chest X-ray (Kermany et al. 2018)' --modality CR DX
fi

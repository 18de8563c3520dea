#!/usr/bin/env bash
# Rule 1 for brain MRI (docs/experiments-shift.md): the five 3-epoch intensity pilots on lgg-flair (each skipped
# when its checkpoint is in runs/), then the rule's choice, printed alone on stdout (training output goes to
# stderr). Used by bench/long_runs_lgg.sh and bench/ablation_runs.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SPMAMBA_DATA:-../shared/data}"
mkdir -p runs
for rule in raw percentile stretch equalize clahe; do
  out="runs/pilot-lgg128-$rule.safetensors"
  [ -f "$out" ] && continue
  spmamba train "$DATA/lgg-flair" --out "$out" --config cpu-lite0 --epochs 3 --val-every 3 --intensity "$rule" \
    --dataset-name 'LGG FLAIR brain MRI (Buda et al. 2019, TCGA-LGG)' --modality MR >&2
done
python - <<'PY'
import json
rules = ("raw", "percentile", "stretch", "equalize", "clahe")
auc = {r: json.load(open(f"runs/pilot-lgg128-{r}.metrics.json"))["training"]["history"][-1]["shift_auroc_max_only"]
       for r in rules}
best = max(auc, key=auc.get)
print(best if auc[best] >= auc["raw"] + 0.010 else "raw")
PY

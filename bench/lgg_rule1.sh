#!/usr/bin/env bash
# Rule 1 for brain MRI (docs/experiments-shift.md): the five 3-epoch intensity pilots on lgg-flair (each skipped
# when its checkpoint is in runs/), then the rule's choice, printed alone on stdout (training output goes to
# stderr). The pilots' figures and the choice are recorded in docs/lgg128-rule1.json, which later
# calls (and a replaced machine) read instead of training again. Used by bench/long_runs_lgg.sh and
# bench/ablation_runs.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SPMAMBA_DATA:-../shared/data}"
mkdir -p runs
record=docs/lgg128-rule1.json
if [ -f "$record" ]; then
  python -c "import json, sys; print(json.load(open(sys.argv[1]))['chosen'])" "$record"
  exit 0
fi
for rule in raw percentile stretch equalize clahe; do
  out="runs/pilot-lgg128-$rule.safetensors"
  [ -f "$out" ] && continue
  spmamba train "$DATA/lgg-flair" --out "$out" --config cpu-lite0 --epochs 3 --val-every 3 --intensity "$rule" --resume \
    --dataset-name 'LGG FLAIR brain MRI (Buda et al. 2019, TCGA-LGG)' --modality MR >&2
done
python - "$record" <<'PY'
import json
import sys

rules = ("raw", "percentile", "stretch", "equalize", "clahe")
history = {r: json.load(open(f"runs/pilot-lgg128-{r}.metrics.json"))["training"]["history"][-1] for r in rules}
auc = {r: h["shift_auroc_max_only"] for r, h in history.items()}
best = max(auc, key=auc.get)
chosen = best if auc[best] >= auc["raw"] + 0.010 else "raw"
rule = "highest shift-split max-only AUROC after epoch 3, if >= raw + 1.0 point, else raw (docs/experiments-shift.md)"
with open(sys.argv[1], "w") as f:
    json.dump({"rule": rule, "chosen": chosen, "last_epoch": history}, f, indent=1)
print(chosen)
PY

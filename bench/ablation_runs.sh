#!/usr/bin/env bash
# The scan-order and prototype ablations of the paper's Table 4 (issue: "Does the scan order matter?"), trained
# with the recipe of the long runs they are compared with (bench/long_runs.sh, bench/long_runs_lgg.sh): same
# data, split, epochs, intensity rule and last epoch kept; one switch each. The long runs themselves are the
# Circular-Hilbert rows. Research checkpoints: written to the git-ignored weights/ablations/, where the demo's
# Compare tab lists them; their metadata goes to docs/ablations/ (python bench/ablation_records.py). Waits for
# the long-run queues, then trains one network at a time; resumable. Run in the background:
#   nohup bash bench/ablation_runs.sh > runs/queue-ablations.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SPMAMBA_DATA:-../shared/data}"
mkdir -p weights/ablations

while pgrep -f "bench/long_runs(_lgg)?.sh" > /dev/null; do sleep 300; done

intensity() {  # the intensity rule the long run was trained with, from its own metadata
  python -c "import json,sys; from spmamba.checkpoint import read_metadata; \
print(read_metadata(sys.argv[1])['training']['options']['intensity'])" "$1"
}

run() {  # dataset folder, long run, name prefix, dataset name, modality, then the switches and the name suffix
  local data=$1 long=$2 prefix=$3 name=$4 modality=$5 suffix=$6
  shift 6
  local out="weights/ablations/$prefix-$suffix.safetensors"
  [ -f "$out" ] && return
  spmamba train "$DATA/$data" --out "$out" --config cpu-lite0 --epochs 100 --val-every 5 --keep last \
    --intensity "$(intensity "$long")" --resume --dataset-name "$name" --modality ${modality//,/ } "$@"
}

for spec in "zhanglab runs/zhanglab128-e100.safetensors zhanglab128 ZhangLab_chest_X-ray_(Kermany_et_al._2018) CR,DX" \
            "lgg-flair runs/lgg128-e100.safetensors lgg128 LGG_FLAIR_brain_MRI_(Buda_et_al._2019,_TCGA-LGG) MR"; do
  read -r data long prefix name modality <<< "$spec"
  name=${name//_/ }
  run "$data" "$long" "$prefix" "$name" "$modality" raster --scan-order raster --num-directions 8
  run "$data" "$long" "$prefix" "$name" "$modality" boustrophedon --scan-order boustrophedon --num-directions 8
  run "$data" "$long" "$prefix" "$name" "$modality" hilbert --scan-order hilbert --num-directions 8
  run "$data" "$long" "$prefix" "$name" "$modality" no-prototypes --prototype-banks 0
done

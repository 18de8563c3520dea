#!/usr/bin/env bash
# The scan-order and prototype ablations of the paper's Table 4 (issue: "Does the scan order matter?"), with the
# amended recipe of docs/scan-order.md: 10 epochs at 128², validation on the in-pool and shift splits every 5,
# last epoch kept, the dataset's rule-1 intensity; a Circular-Hilbert row trained the same way, then one switch
# per row. Research checkpoints: written to the git-ignored weights/ablations/, where the demo's Compare tab
# lists them; their metadata and shift-split scores go to docs/ablations/ (bench/ablation_records.py,
# bench/scan_table.py score), so the table survives the weights. One network per worker, resumable; a second
# worker takes the next row not taken (runs/lock-<row>; after a killed worker, remove its lock). A row
# interrupted by a session's end is carried like the long runs (bench/carried.sh). Run in the background:
#   OMP_NUM_THREADS=1 nohup bash bench/ablation_runs.sh > runs/queue-ablations.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${SPMAMBA_DATA:-../shared/data}"
mkdir -p weights/ablations runs

run() {  # dataset folder, name prefix, dataset name, modality, intensity, name suffix, then the switches
  local data=$1 prefix=$2 name=$3 modality=$4 intensity=$5 suffix=$6
  shift 6
  local out="weights/ablations/$prefix-$suffix.safetensors"
  # a row whose records are in docs/ablations is done, even where its weights went with a replaced machine
  [ -f "$out" ] || [ -f "docs/ablations/$prefix-$suffix.scores.json" ] && return
  mkdir "runs/lock-$prefix-$suffix" 2> /dev/null || return 0  # another worker has this row
  bash bench/carried.sh restore "$out"  # a row's state committed at the end of an earlier session
  spmamba train "$DATA/$data" --out "$out" --config cpu-lite0 --epochs 10 --val-every 5 --keep last \
    --intensity "$intensity" --resume --dataset-name "$name" --modality $modality "$@"
  python bench/ablation_records.py "$out"
  python bench/scan_table.py score "$out"
  python bench/scan_table.py score --split val "$out"  # in-pool, to read beside it
  bash bench/carried.sh drop "$out"
  rmdir "runs/lock-$prefix-$suffix"
}

rows() {  # the seven rows of one dataset: dataset folder, name prefix, dataset name, modality, intensity
  run "$@" circular-hilbert
  run "$@" raster --scan-order raster --num-directions 8
  run "$@" boustrophedon --scan-order boustrophedon --num-directions 8
  run "$@" hilbert --scan-order hilbert --num-directions 8
  run "$@" no-prototypes --prototype-banks 0
  run "$@" circular-hilbert-seed1 --seed 1  # the first row again, another seed: the run-to-run spread
  run "$@" raster-seed1 --scan-order raster --num-directions 8 --seed 1  # docs/scan-order.md, the raster rule
}

rows zhanglab zhanglab128-e10 'ZhangLab chest X-ray (Kermany et al. 2018)' "CR DX" clahe
lgg=(lgg-flair lgg128-e10 'LGG FLAIR brain MRI (Buda et al. 2019, TCGA-LGG)' MR "$(bash bench/lgg_rule1.sh)")
rows "${lgg[@]}"
run "${lgg[@]}" no-prototypes-seed1 --prototype-banks 0 --seed 1  # docs/scan-order.md, the prototype rule

#!/usr/bin/env bash
# A long run's train state carried in the repository between sessions (carried/README.md): a machine replaced
# between sessions loses runs/, and a 100-epoch run takes more than one session of one core.
#   bash bench/carried.sh restore runs/X.safetensors   before training: the carried state, where runs/ has none
#   bash bench/carried.sh save runs/X.safetensors      at a session's end: the newest state, to be committed
#   bash bench/carried.sh drop runs/X.safetensors      once the run has written its checkpoint
set -euo pipefail
cd "$(dirname "$0")/.."
action=$1 out=$2
state="${out%.safetensors}.train-state.safetensors"
carried="carried/$(basename "$state")"
case "$action" in
  restore) if [ ! -f "$state" ] && [ -f "$carried" ]; then mkdir -p "$(dirname "$state")" && cp "$carried" "$state"; fi ;;
  save) cp "$state" "$carried" ;;
  drop) rm -f "$carried" ;;
  *) echo "usage: bench/carried.sh restore|save|drop CHECKPOINT" >&2; exit 2 ;;
esac

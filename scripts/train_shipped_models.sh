#!/usr/bin/env bash
# Reproduce the checkpoints shipped in models/ (models/README.md): render the synthetic
# data (generator 1.2.0), train the encoder, add the reference bank and the heatmap head
# that reference-free detect uses, export as float16.
# About 75 minutes for one variant on this 2-core CPU VM (a GPU is used when present).
# Usage: bash scripts/train_shipped_models.sh [CONFIG ...]   (default: paper; also uniform, shared)
# Env: STEPS (300), SEED (0), DATA (datasets/synth-v12), THREADS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
export MUJOCO_GL=${MUJOCO_GL:-egl}
steps=${STEPS:-300}
seed=${SEED:-0}
data=${DATA:-datasets/synth-v12}
threads=${THREADS:-2}
configs=("${@:-paper}")

$py -m funk_perception.data.synth --out "$data" --workers 2
for config in "${configs[@]}"; do
  run="runs/v12-$config"; [ "$seed" = 0 ] || run="$run-seed$seed"
  name="funk-lite0-synth"; [ "$config" = paper ] || name="$name-$config"; [ "$seed" = 0 ] || name="$name-seed$seed"
  # --resume continues a killed run (and starts a new one when there is none)
  $py -m funk_perception.train --config "$config" --data "$data/annotations.csv" --out "$run" --resume \
    --steps "$steps" --seed "$seed" --set num_threads="$threads" --set prototype_views=2 --set progress=false
  $py -m funk_perception.train.heatmap --model "$run/checkpoint.pt" --data "$data/annotations.csv" \
    --out "$run/with-head.pt" --seed "$seed" --threads "$threads"
  $py -m funk_perception.train.bank --model "$run/with-head.pt" --data "$data/annotations.csv" --out "$run/with-bank.pt"
  $py -m funk_perception.model.export "$run/with-bank.pt" "models/$name.pt"
done

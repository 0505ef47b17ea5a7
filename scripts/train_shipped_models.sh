#!/usr/bin/env bash
# Reproduce the checkpoints shipped in models/ and their evaluation (models/README.md).
# About 75 minutes on a 2-core CPU machine; a GPU is used when present.
# Usage: bash scripts/train_shipped_models.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
py=.venv/bin/python
export MUJOCO_GL=${MUJOCO_GL:-egl}

$py -m funk_perception.data.synth --out datasets/synth --workers 2
# The three variants train side by side, one thread each (on 2 cores that beats
# running them one after another with 2 threads, which contend anyway).
for config in paper uniform shared; do
  $py -m funk_perception.train --config "$config" --data datasets/synth/annotations.csv --out "runs/synth-$config" \
    --steps "$steps" --set num_threads=1 --set prototype_views=2 --set progress=false &
done
wait
$py -m funk_perception.model.export runs/synth-paper/checkpoint.pt models/funk-lite0-synth.pt
$py -m funk_perception.model.export runs/synth-uniform/checkpoint.pt models/funk-lite0-synth-uniform.pt
$py -m funk_perception.model.export runs/synth-shared/checkpoint.pt models/funk-lite0-synth-shared.pt
$py -m funk_perception.evaluate --data datasets/synth/annotations.csv --out results/eval-synth \
  --model models/funk-lite0-synth.pt --model models/funk-lite0-synth-uniform.pt --model models/funk-lite0-synth-shared.pt
$py -m funk_perception.evaluate --data datasets/synth/heldout.csv --references datasets/synth/annotations.csv \
  --out results/eval-synth-heldout \
  --model models/funk-lite0-synth.pt --model models/funk-lite0-synth-uniform.pt --model models/funk-lite0-synth-shared.pt

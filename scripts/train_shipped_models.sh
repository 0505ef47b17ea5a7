#!/usr/bin/env bash
# The ablation and alternative checkpoints of the model card's history (docs/EXPERIMENTS.md): the gating
# ablations (uniform, shared) and the Lite2 trunk, trained with the default's recipe of before the one-recipe
# rebuild. They are not shipped (models/ holds the default alone); this writes them to runs/models/.
# The shipped default itself is rebuilt by python scripts/build_model.py recipes/funk-lite0-synth.toml.
# Usage: bash scripts/train_shipped_models.sh [CONFIG ...]   (default: paper; also uniform, shared)
# Env: STEPS (300), SEEDS ("0 1": the joined members, in runs/VERSION-CONFIG[-TRUNK]-joined; another set
#      joins in ...-joined-sSEEDS; one seed exports that seed alone), TRUNK (lite0; lite2), TRUNK_WEIGHT (0.5),
#      DATA (datasets/synth-v13), THREADS (2), MODELS (runs/models: where the files are exported).
# About 2 hours per config on this 2-core CPU VM; every training resumes after a kill.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
export MUJOCO_GL=${MUJOCO_GL:-egl}
steps=${STEPS:-300}
seeds=(${SEEDS:-0 1})
weight=${TRUNK_WEIGHT:-0.5}
trunk=${TRUNK:-lite0}
tag=""; trunk_set=(); [ "$trunk" = lite0 ] || { tag="-$trunk"; trunk_set=(--set model.trunk="$trunk"); }
data=${DATA:-datasets/synth-v13}
version=$(basename "$data"); version=${version#synth-}
threads=${THREADS:-2}
configs=("${@:-paper}")
models=${MODELS:-runs/models}  # export's atomic save creates the folder

$py -m funk_perception.data.synth --out "$data" --workers 2
for config in "${configs[@]}"; do
  members=()
  for seed in "${seeds[@]}"; do
    run="runs/$version-$config$tag"; [ "$seed" = 0 ] || run="$run-seed$seed"
    # --resume continues a killed run (and starts a new one when there is none); a finished one is skipped
    if ! grep -q "done: $steps steps" "$run/train.log" 2>/dev/null; then
      $py -m funk_perception.train --config "$config" --data "$data/annotations.csv" --out "$run" --resume \
        --steps "$steps" --seed "$seed" "${trunk_set[@]}" --set num_threads="$threads" --set prototype_views=2 --set progress=false
    fi
    members+=(--member "$run/checkpoint.pt")
  done
  name="funk-$trunk-synth"; [ "$config" = paper ] || name="$name-$config"
  if [ "${#seeds[@]}" = 1 ]; then
    joined="${members[1]}"; [ "${seeds[0]}" = 0 ] || name="$name-seed${seeds[0]}"
    out="$(dirname "$joined")"
  else
    # another seed set joins into its own folder, so it never overwrites the two-seed join
    out="runs/$version-$config$tag-joined"; [ "${seeds[*]}" = "0 1" ] || out="$out-s$(IFS=; echo "${seeds[*]}")"
    joined="$out/checkpoint.pt"
    $py -m funk_perception.train.ensemble "${members[@]}" --trunk-weight "$weight" --data "$data/annotations.csv" \
      --threads "$threads" --out "$joined"
  fi
  $py -m funk_perception.train.heatmap --model "$joined" --data "$data/annotations.csv" \
    --out "$out/with-head.pt" --seed "${seeds[0]}" --threads "$threads"
  $py -m funk_perception.train.bank --model "$out/with-head.pt" --data "$data/annotations.csv" --out "$out/with-bank.pt"
  # the shipped default detects by bank_heatmap (models/README.md, variant 39); the ablation files keep their default
  method=(); [ "$config" = paper ] && method=(--detect-method bank_heatmap)
  $py -m funk_perception.model.export "$out/with-bank.pt" "$models/$name.pt" "${method[@]}"
done

#!/usr/bin/env bash
# Reproduce the checkpoints shipped in models/ (models/README.md): render the synthetic
# data (generator 1.3.0), train the encoder once per seed, join the seeds with the trunk
# blended in (funk_perception.train.ensemble), add the heatmap head and the reference bank
# that reference-free detect uses, export as float16.
# About 2 hours for the default on this 2-core CPU VM when it is otherwise idle (two trainings of
# about 21 minutes each when idle, 35-45 under load; the join's prototypes 5 minutes, the heatmap
# head 15, the bank 1); a GPU is used when present. Every training resumes after a kill.
# Usage: bash scripts/train_shipped_models.sh [CONFIG ...]   (default: paper; also uniform, shared)
# Env: STEPS (300), SEEDS ("0 1": the joined members, in runs/VERSION-CONFIG[-TRUNK]-joined; another set
#      joins in ...-joined-sSEEDS, for instance -joined-s012; one seed ships that seed alone),
#      TRUNK (lite0; lite2 gives models/funk-lite2-synth*.pt, its feature cache about 12 minutes more),
#      TRUNK_WEIGHT (0.5), DATA (datasets/synth-v13), THREADS (2), MODELS (models: where the files are
#      exported; another folder tries a recipe without replacing a shipped file); runs go to runs/v13-CONFIG[-TRUNK][-seedN]
# (the version is the DATA folder's name less "synth-"; -TRUNK only for a trunk other than lite0).
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
models=${MODELS:-models}  # export's atomic save creates the folder

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

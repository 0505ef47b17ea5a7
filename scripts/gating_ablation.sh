#!/usr/bin/env bash
# The gating ablation with the shipped recipe (models/README.md): train task, uniform and shared
# gating on generator-1.3.0 data for each seed, evaluate transfer on the real-photo dev set (plain
# and mirrored, when ../shared/data is present) and on the synthetic test split, and summarise
# with `python scripts/ablation.py` into results/gating-ablation/.
# About 21 minutes of training per run on this 2-core CPU VM when it is otherwise idle (6 runs for
# 2 seeds); every training resumes after a kill and is skipped once finished.
# Usage: bash scripts/gating_ablation.sh      Env: SEEDS ("0 1"), STEPS (300), DATA (datasets/synth-v13; runs go to runs/v13-CONFIG[-seedN]), THREADS (2),
#   VARIANT ("": the lite0 trunk; "_ms": the multi-stage lite0-ms trunk, configs paper_ms / uniform_ms / shared_ms),
#   TRUNK (lite0; lite2: the EfficientNet-Lite2 trunk, runs runs/v13-CONFIG-lite2[-seedN] as train_shipped_models.sh
#   names them, results into results/ablation-lite2 and results/gating-ablation-lite2[-joined]),
#   JOINED (1: also join each gating's seeds with the trunk blended in at TRUNK_WEIGHT (0.5), the shipped
#   recipe, and evaluate those into results/gating-ablation$VARIANT-joined; 0: skip)
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
export MUJOCO_GL=${MUJOCO_GL:-egl}
seeds=${SEEDS:-0 1}
steps=${STEPS:-300}
data=${DATA:-datasets/synth-v13}
version=$(basename "$data"); version=${version#synth-}
threads=${THREADS:-2}
real=${REAL:-../shared/data/funkpoint-real-dev/annotations.csv}
variant=${VARIANT:-}
trunk=${TRUNK:-lite0}
tag=""; trunk_set=(); [ "$trunk" = lite0 ] || { tag="-$trunk"; trunk_set=(--set model.trunk="$trunk"); }
if [ -n "$variant" ] && [ -n "$tag" ]; then
  echo "error: VARIANT=$variant names its own trunk; it cannot be combined with TRUNK=$trunk" >&2; exit 2
fi

$py -m funk_perception.data.synth --out "$data" --workers 2
outs=()
# one evaluation per seed and dataset, skipped when newer than its checkpoints (so a rerun resumes)
evaluate() {
  local out=$1; shift
  local fresh=1
  for m in "${models[@]}"; do [ "$m" = --model ] || [ "$out/results.json" -nt "$m" ] || fresh=0; done
  [ "$fresh" = 1 ] || $py -m funk_perception.evaluate "$@" "${models[@]}" --no-detect --no-figures --out "$out"
  outs+=("$out/results.json")
}
# the dev set (plain and mirrored, when present) and the synthetic test split: evaluate_all FOLDER SUFFIX
evaluate_all() {
  if [ -f "$real" ]; then
    evaluate "$1/real-dev$2" --data "$real"
    evaluate "$1/real-dev-mirror$2" --data "$real" --mirror
  fi
  evaluate "$1/synth-$version$2" --data "$data/annotations.csv" --max-targets-per-task 30
}
for seed in $seeds; do
  models=()
  for config in "paper$variant" "uniform$variant" "shared$variant"; do
    run="runs/$version-$config$tag"; [ "$seed" = 0 ] || run="$run-seed$seed"
    if ! grep -q "done: $steps steps" "$run/train.log" 2>/dev/null; then
      $py -m funk_perception.train --config "$config" --data "$data/annotations.csv" --out "$run" --resume \
        --steps "$steps" --seed "$seed" "${trunk_set[@]}" --set num_threads="$threads" --set prototype_views=2 \
        --set progress=false --set checkpoint_every=25
    fi
    models+=(--model "$run/checkpoint.pt")
  done
  evaluate_all "results/ablation$variant$tag" "-seed$seed"
done
$py scripts/ablation.py "${outs[@]}" --out "results/gating-ablation$variant$tag"

[ "${JOINED:-1}" = 1 ] || exit 0
models=(); outs=()
for config in "paper$variant" "uniform$variant" "shared$variant"; do
  members=()
  for seed in $seeds; do
    run="runs/$version-$config$tag"; [ "$seed" = 0 ] || run="$run-seed$seed"
    members+=(--member "$run/checkpoint.pt")
  done
  # the same joined file train_shipped_models.sh makes (a seed set other than "0 1" in -joined-sSEEDS);
  # rejoined only when a member is newer
  joined="runs/$version-$config$tag-joined"; [ "$seeds" = "0 1" ] || joined="$joined-s${seeds// /}"
  joined="$joined/checkpoint.pt"
  stale=0
  for m in "${members[@]}"; do [ "$m" = --member ] || [ "$joined" -nt "$m" ] || stale=1; done
  [ "$stale" = 0 ] || $py -m funk_perception.train.ensemble "${members[@]}" --trunk-weight "${TRUNK_WEIGHT:-0.5}" \
    --data "$data/annotations.csv" --threads "$threads" --out "$joined"
  models+=(--model "$joined")
done
evaluate_all "results/ablation$variant$tag" "-joined"
$py scripts/ablation.py "${outs[@]}" --out "results/gating-ablation$variant$tag-joined"

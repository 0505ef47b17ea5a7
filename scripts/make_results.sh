#!/usr/bin/env bash
# Rebuild docs/RESULTS.md from fresh runs with the current shipped checkpoint:
# the PCK evaluations (synthetic test split, held-out categories, real-photo dev set),
# the few-shot benchmark (synthetic held-out categories, real-photo dev set), then
# `python scripts/report.py --collect`, which copies their JSON (and small
# copies of their figures) into docs/results/ together with the grasp benchmark's
# JSON (benchmarks/results/grasp.json) and the RL runs (runs/hammer/*), and writes
# the page. Commit docs/results/ and docs/RESULTS.md afterwards.
#
#   bash scripts/make_results.sh                 # everything (about 30 minutes on a loaded 2-core CPU)
#   MODEL=models/other.pt bash scripts/make_results.sh
#   STEPS="fewshot report" bash scripts/make_results.sh   # only some stages (evaluate, fewshot, report)
#
# Needs the synthetic dataset DATA (default datasets/synth-v13: python -m funk_perception.data.synth --out datasets/synth-v13 --workers 2).
# Renders datasets/synth-fewshot (seconds) and trains the category-fine-tuned trunk
# runs/classify-lite0 (python scripts/classify.py, about 20 minutes on one
# thread; resumed if killed, skipped once done) when they are missing. Jobs on the
# real-photo dev set are skipped when ../shared/data/funkpoint-real-dev is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-models/funk-lite0-synth.pt}
DATA=${DATA:-datasets/synth-v13}
# The gating ablation has its own section over training seeds (bash scripts/gating_ablation.sh, collected from
# results/gating-ablation); ABLATIONS="models/funk-lite0-synth-uniform.pt ..." adds single checkpoints as rows here.
ABLATIONS=${ABLATIONS:-}
REAL=${REAL:-../shared/data/funkpoint-real-dev/annotations.csv}
CLASSIFIER=${CLASSIFIER:-runs/classify-lite0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export MUJOCO_GL=${MUJOCO_GL:-egl}
STEPS=${STEPS:-evaluate fewshot report}

run() { echo "+ $*" >&2; nice -n 10 "$@"; }
step() { [[ " $STEPS " == *" $1 "* ]]; }

models=(--model "$MODEL")
for m in $ABLATIONS; do [ -f "$m" ] && models+=(--model "$m"); done

if step fewshot && [ ! -f datasets/synth-fewshot/heldout.csv ]; then
  # 20 distinct objects, one view each, of every held-out category (the training categories get one
  # token instance, unused here)
  run "$PY" -m funk_perception.data.synth --out datasets/synth-fewshot --categories bottle \
    --instances-per-category 1 --views-per-instance 1 --heldout-instances-per-category 20 --workers 2 --no-progress
fi
if step fewshot && [ ! -f "$CLASSIFIER/summary.json" ]; then
  run "$PY" scripts/classify.py --data "$DATA/annotations.csv" --out "$CLASSIFIER" --resume --no-progress
fi

if step evaluate; then
  run "$PY" -m funk_perception.evaluate --data "$DATA/annotations.csv" "${models[@]}" --out results/eval-synth
  run "$PY" -m funk_perception.evaluate --data "$DATA/heldout.csv" --references "$DATA/annotations.csv" \
    "${models[@]}" --out results/eval-synth-heldout
  [ -f "$REAL" ] && run "$PY" -m funk_perception.evaluate --data "$REAL" "${models[@]}" --out results/eval-real-dev
fi
if step fewshot; then
  run "$PY" scripts/fewshot.py --data datasets/synth-fewshot/heldout.csv --model "$MODEL" \
    --finetuned "$CLASSIFIER/checkpoint.pt" --shots 1 2 5 --splits 3 --images-per-class 20 \
    --label "synthetic held-out categories" --out results/fewshot-synth-heldout --no-progress
  # 1- and 2-shot on the categories with at least 4 distinct photos, many splits (the set is small)
  [ -f "$REAL" ] && run "$PY" scripts/fewshot.py --data "$REAL" --model "$MODEL" \
    --finetuned "$CLASSIFIER/checkpoint.pt" --shots 1 2 --splits 100 --images-per-class 0 --min-images-per-class 4 \
    --label "real photos (dev set)" --out results/fewshot-real-dev --no-progress
fi
if step report; then
  run "$PY" scripts/report.py --collect
fi

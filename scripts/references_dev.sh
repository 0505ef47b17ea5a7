#!/usr/bin/env bash
# The real-photo dev set's own reference photos as a user bank, scored with detect beside the shipped
# bank alone (docs/REFERENCES.md, "Measured on the real dev photos"). Reruns the whole measurement for the
# current shipped model (about 4 minutes on a loaded 2-core CPU):
#
#   bash scripts/references_dev.sh
#   MODEL=models/other.pt OUT=runs/references-other bash scripts/references_dev.sh
#
# Only the rows of role "reference" go into the bank (the paper's protocol gives them; test photos never).
# The bank and the evaluation folders live under OUT (default runs/references, never committed). A bank left
# there by another model is re-embedded first, so the fingerprint check never stops a rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-models/funk-lite0-synth.pt}
REAL=${REAL:-../shared/data/funkpoint-real-dev/annotations.csv}
OUT=${OUT:-runs/references}
BANK=$OUT/dev-references.pt
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

if [ -f "$BANK" ]; then
    "$PY" -m funk_perception.references reembed --bank "$BANK" --model "$MODEL" --device cpu
fi
"$PY" -m funk_perception.references add --csv "$REAL" --roles reference --bank "$BANK" --model "$MODEL" --device cpu
date -u +"%Y-%m-%d %H:%M UTC"; uptime
for variant in "add --references-mode add" "replace --references-mode replace" \
               "pooled --references-mode add --references-share pooled" \
               "share0.25 --references-mode add --references-share 0.25" \
               "share0.75 --references-mode add --references-share 0.75"; do
    name=${variant%% *}; flags=${variant#* }
    for mirror in "" "--mirror"; do
        tag=$name${mirror:+-mirror}
        # shellcheck disable=SC2086  # flags are words on purpose
        "$PY" -m funk_perception.evaluate --data "$REAL" --model "$MODEL" --no-figures --no-progress --device cpu \
            --references-bank "$BANK" $flags $mirror --out "$OUT/eval-$tag" > "$OUT/eval-$tag.log"
        echo "== $tag"
        grep "detect by bank_heatmap" "$OUT/eval-$tag/results.md" | tail -2
    done
done
uptime

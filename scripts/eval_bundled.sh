#!/usr/bin/env bash
# The model card's evaluation: the bundled model (mum-default) beside the untrained model of the same size
# (mum-tiny, random weights, seed 0), 10 views per scene, at the bundled model's training resolution.
#   scripts/eval_bundled.sh            # ≈ 10 min on a 2-core CPU; JSON under docs/eval/
# Synthetic: the first 50 held-out test scenes (pose AUC@30, depth, point cloud after Sim(3) + ICP).
# Real: the demo scenes against their reference cameras (COLMAP / TUM ground truth), pose AUC@30.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENES="${SCENES:-50}"
mkdir -p docs/eval
for model in mum-default mum-tiny; do
  mum-eval --model "$model" --synthetic "$SCENES" --views 10 --size 128 128 --quiet \
    --json "docs/eval/${model}_synthetic.json" --overwrite
  mum-eval --model "$model" --views 10 --size 96 128 --quiet \
    --scene demo/tum_freiburg --scene demo/buddha --scene demo/sacre_coeur --scene demo/synthetic_room \
    --json "docs/eval/${model}_real.json" --overwrite
done

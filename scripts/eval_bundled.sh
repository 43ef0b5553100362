#!/usr/bin/env bash
# The model card's evaluation: the bundled model (mum-default) beside the untrained model of the same size
# (mum-tiny, random weights, seed 0), 10 views per scene, at the bundled model's training resolution.
#   scripts/eval_bundled.sh            # ≈ 10–20 min on a 2-core CPU; results in benchmarks/results/model_eval_cpu.json
# Synthetic: the first 50 held-out test scenes (pose AUC@30, depth, point cloud after Sim(3) + ICP).
# Real: the demo scenes against their reference cameras, pose AUC@30. Those of demo/tum_freiburg and
# demo/sacre_coeur were made by pycolmap SfM on the same images, demo/buddha's by AliceVision SfM: references,
# not ground truth; demo/synthetic_room's are the engine's exact cameras.
set -euo pipefail
cd "$(dirname "$0")/.."
python benchmarks/model_eval.py --scenes "${SCENES:-50}" "$@"

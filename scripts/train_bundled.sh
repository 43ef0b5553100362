#!/usr/bin/env bash
# Retrain the bundled default model (mum-tiny) from scratch on a CPU: MuM pretraining, then distillation.
# Each stage resumes exactly from its latest checkpoint if re-run after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
mum-train pretrain --config configs/bundled_pretrain.yaml "$@"
mum-train distill --config configs/bundled_distill.yaml "$@"
python scripts/package_bundled.py runs/bundled_distill heads/weights/mum-tiny.safetensors

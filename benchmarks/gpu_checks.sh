#!/usr/bin/env bash
# Every GPU check of the project in one run, for a lent H100/H200 (about 8 minutes):
#   CUDA correctness (xformers = SDPA, CUDA = CPU, linear memory), encoder MFU with both attention backends,
#   and predict() time/memory vs frames for every preset beside vggt-1b, xformers and SDPA side by side.
# Results land in benchmarks/results/*_cuda.{json,png} (copied to $OUT when set, for the device tool).
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, xformers; print(torch.__version__, xformers.__version__, torch.cuda.get_device_name())"
python -m pytest -q --runslow tests/test_gpu.py tests/test_attention.py
python benchmarks/encoder.py --presets tiny vits16 vitl16 --sizes 224 512 --batch 64
python benchmarks/inference.py --repeats 3
python benchmarks/train.py --size 224 --views 8 --batch 4 --pretrain-preset vitl16 --distill-preset mum-vitl16
if [ -n "${OUT:-}" ]; then cp benchmarks/results/*_cuda.* "$OUT"/; fi

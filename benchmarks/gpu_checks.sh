#!/usr/bin/env bash
# Every GPU check of the project in one run, on one lent H100/H200 (under 8 minutes; stages that would overrun
# the budget are skipped and recorded): CUDA correctness (every attention backend that runs = the explicit
# softmax, xformers = SDPA when xformers runs, CUDA = CPU, memory, compiled = eager), the fallback from an
# xformers built for another torch, predict() time and peak memory of mum-vitl16 at 1-1000 frames of 512 px
# beside vggt-1b at 518 px up to 200, encoder MFU at 512 px eager and compiled, training MFU (pretraining and
# distillation) at the batch that fills the GPU. Details: benchmarks/gpu_checks.py.
#
# It needs PyTorch alone (no pycolmap, open3d, gradio, trimesh, plyfile). Once, in the checkout that the session
# calls the device tool from (a folder git ignores, carried along; 3.3 MB):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 -d .whl xformers==0.0.35
# Then the one call (device tool):
#   run(command="bash benchmarks/gpu_checks.sh", carry=[".whl"], timeout_s=540)
# It writes benchmarks/results/gpu_checks_<commit>_cuda.json (and the predict plot), copied to $OUT for the
# tool; without .whl the xformers stage is left out. Extra arguments go to gpu_checks.py (e.g. --budget-s 300).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=$(command -v python3 || command -v python)
XF=()
if compgen -G ".whl/xformers-*.whl" >/dev/null; then
  rm -rf /tmp/gpu-checks-xformers
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gpu-checks-xformers .whl/xformers-*.whl; then
    XF=(--xformers /tmp/gpu-checks-xformers)
  fi
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
"$PY" benchmarks/gpu_checks.py "${XF[@]}" --out-dir benchmarks/results "$@"
status=$?
if [ -n "${OUT:-}" ]; then
  cp benchmarks/results/gpu_checks_*_cuda.json "$OUT"/ 2>/dev/null || true
  latest=$(ls -t /tmp/gpu-checks-*/predict.png 2>/dev/null | head -1)
  if [ -n "$latest" ]; then cp "$latest" "$OUT"/inference_cuda.png; fi
fi
exit $status

#!/usr/bin/env bash
# Runs benchmarks/gpu_bench.py on a CUDA machine that has torch but not our other dependencies: wheels for
# Python 3.12 in .whl/ (see "GPU notes" in the README) are installed into /tmp/site first.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD/src:$PWD/benchmarks" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, diffusers, transformers, fastapi; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)" || exit 1
exec python3 benchmarks/gpu_bench.py "$@"

#!/usr/bin/env bash
# One prepared GPU check, inside 8 minutes on one GPU: E-MMKGR and LightGCN epoch times at
# Amazon-Clothing scale and full-ranking evaluation of all users (benchmarks/gpu_check.py).
#   bash benchmarks/gpu_check.sh             # on the GPU machine; JSON to $OUT (or benchmarks/results)
#   bash benchmarks/gpu_check.sh --dry-run   # here: the same path on the CPU with tiny data
# Python: $EMMKGR_PYTHON, else .venv/bin/python when it exists, else python3; the package is read
# from src/ when it is not installed. Wheels in .whl/ (e.g. faiss-cpu for Python 3.12, which the
# GPU image lacks) are installed into /tmp/site first.
set -euo pipefail
cd "$(dirname "$0")/.."

py=${EMMKGR_PYTHON:-}
if [ -z "$py" ]; then
  if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi
fi
if compgen -G ".whl/*.whl" > /dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! "$py" -c "import emmkgr_pyg" 2>/dev/null; then
  export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
out=${OUT:-benchmarks/results}
mkdir -p "$out"

if [ "${1:-}" = "--dry-run" ]; then
  exec timeout 300 "$py" benchmarks/gpu_check.py --device cpu --tiny --epochs 1 --out "$out/gpu_check_dry_run.json"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# no stage starts after 400 s; 460 s is the hard stop (the JSON is rewritten after every stage)
timeout 460 "$py" benchmarks/gpu_check.py --device cuda --epochs 2 --budget-s 400 --out "$out/gpu_check.json" \
  2>&1 | tee "$out/gpu_check.log"

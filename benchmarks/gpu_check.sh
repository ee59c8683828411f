#!/usr/bin/env bash
# One prepared run for a lent GPU (issue 8, item 8): the CUDA tests on the real device,
# then bench_cuda.py (generated and training kernels against the DRAM bandwidth).
# Usage: bash benchmarks/gpu_check.sh [bench_cuda.py arguments]
set -uo pipefail
cd "$(dirname "$0")/.."
export NUMBA_ENABLE_CUDASIM=0 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c "from numba import cuda; raise SystemExit(not cuda.is_available())"; then
    echo "gpu_check: numba.cuda finds no GPU here; nothing run" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv || true
echo "== CUDA tests on the device (every test whose name or module says cuda)"
python3 -m pytest -q -p no:cacheprovider -k cuda tests/ 2>&1 | tail -15
echo "== bench_cuda.py $*"
python3 benchmarks/bench_cuda.py "$@"

#!/usr/bin/env bash
# The GPU check, as one short command on a machine with a GPU and no network:
# the test suite on CuPy and torch-CUDA (pytest directly: nox cannot install there),
# then the GPU benchmark. Pure-Python wheels missing there (array-api-compat,
# array-api-strict) may be carried in .whl/; nothing is installed from a network.
#
#   bash benchmarks/gpu_check.sh            # results under $OUT (default /tmp/wce_gpu_out)
set -u
OUT=${OUT:-/tmp/wce_gpu_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import cupy, torch, numpy, array_api_compat as c; print('cupy', cupy.__version__, 'torch', torch.__version__, 'numpy', numpy.__version__, 'array-api-compat', c.__version__)" | tee -a "$OUT/gpu.txt"
timeout "${TEST_TIMEOUT:-300}" python3 -m pytest -q -rfE -p no:cacheprovider tests \
  --backend cupy --backend torch_cuda 2>&1 | tee "$OUT/pytest_gpu.log"
test_rc=${PIPESTATUS[0]}
timeout "${BENCH_TIMEOUT:-240}" python3 benchmarks/bench.py --gpu ${BENCH_ARGS:-} 2>&1 \
  | tee "$OUT/bench_gpu.log"
bench_rc=${PIPESTATUS[0]}
cp BENCHMARKS.md "$OUT/BENCHMARKS_gpu.md" 2>/dev/null
cp benchmarks/throughput_gpu.png "$OUT/" 2>/dev/null
echo "tests rc=$test_rc bench rc=$bench_rc"
[ "$test_rc" = 0 ] && [ "$bench_rc" = 0 ]

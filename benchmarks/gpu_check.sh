#!/usr/bin/env bash
# The GPU check, in one call on a machine with an NVIDIA GPU, nvcc, CuPy (PyTorch with CUDA
# optional) and no internet: build and install fastnn from this checkout with the CUDA backend
# for this GPU's architecture, run tests/cuda, then time fastnn against cuBLAS and PyTorch
# (benchmarks/bench_gpu.py) and print the table for benchmarks/README.md.
#
# Budget (8 minutes in all): build <= 4 min, tests <= 1.5 min, benchmarks <= 2.5 min.
# Usage: benchmarks/gpu_check.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
started=$SECONDS
quick=${1:-}

say() { echo "== gpu_check [$((SECONDS - started)) s]: $*"; }

for module in cupy pytest scikit_build_core pybind11; do
  python -c "import $module" 2>/dev/null || { echo "gpu_check: Python module '$module' is missing (no internet here: preinstall it)"; exit 2; }
done
for tool in nvcc cmake; do
  command -v $tool >/dev/null || { echo "gpu_check: $tool is not on PATH"; exit 2; }
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
arch=$(python -c "import cupy; print(cupy.cuda.Device().compute_capability)")
say "building fastnn for sm_$arch with $(nvcc --version | tail -1)"

export FASTNN_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
timeout 240 python -m pip install --no-build-isolation --no-deps -q \
  -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$arch" -Cbuild-dir=build/gpu-check "$src"
say "installed; checking the backend"
# From outside the tree, so `import fastnn` is the installed package.
(cd /tmp && python -c "import fastnn, sys; ok = fastnn.cuda.is_available(); print(fastnn.cuda.info()); sys.exit(0 if ok else 1)")

say "tests/cuda"
(cd /tmp && timeout 90 python -m pytest "$src/tests/cuda" -q -x -p no:cacheprovider) || { say "tests/cuda FAILED"; tests_failed=1; }

say "benchmarks"
budget=140
[ "$quick" = "--quick" ] && budget=60
(cd /tmp && timeout $((budget + 20)) python "$src/benchmarks/bench_gpu.py" --budget "$budget" ${quick:+--quick})
say "done in $((SECONDS - started)) s"
exit "${tests_failed:-0}"

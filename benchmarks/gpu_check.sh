#!/usr/bin/env bash
# The GPU check, in one call on a machine with an NVIDIA GPU, nvcc, CuPy (PyTorch with CUDA
# optional) and no internet: build and install fastnn from this checkout with the CUDA backend
# for this GPU's architecture, run tests/cuda and tests/test_ops.py, then time fastnn against cuBLAS and PyTorch
# (benchmarks/bench_gpu.py: GEMM 1024..8192 exact and TF32, the conv layers of LeNet/VGG/ResNet-20
# forward and backward, training steps of LeNet-5, the 4-conv CNN and ResNet-20 at batch 128 and
# 512) and print the table for benchmarks/README.md.
#
# Budget (8.5 minutes in all, each step capped): build <= 200 s, GPU tests <= 150 s,
# benchmarks <= 130 s (+15 s grace).
# Usage: bash benchmarks/gpu_check.sh [--quick | --dry-run]
#   --quick    smaller GEMMs, batch 128 only, a 60 s benchmark budget
#   --dry-run  no GPU needed: checks the tools this script needs, that tests/cuda collects (it
#              skips, saying why), and runs bench_gpu.py --dry-run against the in-tree build
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
started=$SECONDS
mode=${1:-}
case "$mode" in "" | --quick | --dry-run) ;; *) echo "usage: bash benchmarks/gpu_check.sh [--quick | --dry-run]"; exit 2 ;; esac

say() { echo "== gpu_check [$((SECONDS - started)) s]: $*"; }

missing=0
for module in pytest scikit_build_core pybind11 numpy; do
  python -c "import $module" 2>/dev/null || { echo "gpu_check: Python module '$module' is missing (no internet here: preinstall it)"; missing=1; }
done
python -c "import cupy" 2>/dev/null || { echo "gpu_check: CuPy is missing (pip install cupy-cuda13x, or the one for this CUDA)"; [ "$mode" = --dry-run ] || missing=1; }
for tool in nvcc cmake; do
  command -v $tool >/dev/null || { echo "gpu_check: $tool is not on PATH"; missing=1; }
done
python -c "import torch" 2>/dev/null || echo "gpu_check: no PyTorch: the peer columns will say 'no torch'"

if [ "$mode" = --dry-run ]; then
  [ "$missing" = 0 ] || echo "gpu_check: (dry run) the real run would stop here"
  say "dry run against the in-tree build (./scripts/dev_build.sh)"
  export PYTHONPATH="$src/python${PYTHONPATH:+:$PYTHONPATH}"
  python -c "import fastnn; print('fastnn', fastnn.__version__, '| CUDA:', fastnn.cuda.unavailable_reason() or 'available')"
  python -m py_compile "$src"/tests/cuda/*.py && echo "tests/cuda compiles"
  # Collected from tests/ (a module-level skip in tests/cuda/conftest.py is only clean there).
  python -m pytest "$src/tests" --co -q -rs -p no:cacheprovider 2>&1 | grep -E "SKIPPED.*cuda|collected" || true
  python "$src/benchmarks/bench_gpu.py" --dry-run
  say "dry run done"
  exit 0
fi
[ "$missing" = 0 ] || exit 2

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
arch=$(python -c "import cupy; print(cupy.cuda.Device().compute_capability)")
say "building fastnn for sm_$arch with $(nvcc --version | tail -1)"

export FASTNN_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
timeout 200 python -m pip install --no-build-isolation --no-deps -q \
  -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$arch" -Cbuild-dir=build/gpu-check "$src"
say "installed; checking the backend"
# From outside the tree, so `import fastnn` is the installed package.
(cd /tmp && python -c "import fastnn, sys; ok = fastnn.cuda.is_available(); print(fastnn.cuda.info()); sys.exit(0 if ok else 1)")
(cd /tmp && python -m fastnn info)

# tests/cuda (the GPU-only checks) and the op registry's cuda variants (tests/test_ops.py: every op
# on the GPU against the CPU and the reference, and identical error messages).
say "tests/cuda and tests/test_ops.py"
(cd /tmp && timeout 150 python -m pytest "$src/tests/cuda" "$src/tests/test_ops.py" -q -x -p no:cacheprovider) ||
  { say "GPU tests FAILED"; tests_failed=1; }

say "benchmarks"
budget=130
[ "$mode" = --quick ] && budget=60
(cd /tmp && timeout $((budget + 15)) python "$src/benchmarks/bench_gpu.py" --budget "$budget" ${mode:+--quick})
say "done in $((SECONDS - started)) s"
exit "${tests_failed:-0}"

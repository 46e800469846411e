#!/usr/bin/env bash
# Builds the CPU extension with AddressSanitizer + UndefinedBehaviorSanitizer (FASTNN_SANITIZE=ON,
# no CUDA) into build/sanitize, and runs the test suite against it with the ASan runtime
# preloaded into the (uninstrumented) Python interpreter. Any finding aborts the run
# (halt_on_error=1, UBSan without recovery), so a green run means zero findings.
#
#   ./scripts/sanitize.sh                 # the whole suite
#   ./scripts/sanitize.sh tests/test_conv2d.py -k backward   # arguments go to pytest
#
# Leak detection is off: CPython's own allocations at exit would drown fastnn's (valgrind's
# definite-leak check in docs/RELIABILITY.md covers leaks). The extension built here is placed in
# a temporary copy of the package, so the normal build in python/ is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B build/sanitize "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFASTNN_CUDA=OFF \
  -DFASTNN_SANITIZE=ON -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
cmake --build build/sanitize --target _cpu
package=$(mktemp -d)
trap 'rm -rf "$package"' EXIT
cp -r python/fastnn "$package/"
rm -f "$package"/fastnn/_*.so
cp build/sanitize/_cpu*.so "$package/fastnn/"
asan_runtime=$(${CXX:-g++} -print-file-name=libasan.so)
ubsan_runtime=$(${CXX:-g++} -print-file-name=libubsan.so)
export LD_PRELOAD="$asan_runtime $ubsan_runtime"
# allocator_may_return_null: an impossible allocation must come back as MemoryError (which
# fastnn's contract promises for sizes past memory), not abort the run.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
export FASTNN_SANITIZED=1  # tests that spawn many subprocesses or time out may scale down
# Preflight: the interpreter really runs with the ASan runtime and the instrumented extension.
PYTHONPATH="$package" python -c "import fastnn; maps = open('/proc/self/maps').read(); \
assert 'libasan' in maps and fastnn._cpu.__file__.startswith('$package'), 'sanitizer runtime not loaded'"
PYTHONPATH="$package" python -m pytest tests -q -p no:cacheprovider --numprocesses 0 "$@"

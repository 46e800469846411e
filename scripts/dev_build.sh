#!/usr/bin/env bash
# Development build: compiles the extension with CMake into build/dev and copies it next to the
# Python sources, so `PYTHONPATH=python python -m pytest` runs against the working tree without
# reinstalling. (The packaged path is `pip install .`; see README.md.) Extra arguments go to the
# CMake configure step, e.g. -DFASTNN_CUDA=OFF or -DCMAKE_CUDA_ARCHITECTURES=90 (docs/GPU.md).
set -euo pipefail
cd "$(dirname "$0")/.."
build_type=${BUILD_TYPE:-Release}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B build/dev "${generator[@]}" -DCMAKE_BUILD_TYPE="$build_type" \
  -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" "$@" >/dev/null
# Extensions are relinked every time, so one switched off (-DFASTNN_CUDA=OFF) is not left behind.
rm -f build/dev/_*.so python/fastnn/_*.so
cmake --build build/dev
for ext in build/dev/_*.so; do
  cp -f "$ext" python/fastnn/
done
echo "built: $(ls python/fastnn/_*.so | xargs -n1 basename | tr '\n' ' ')"

#!/usr/bin/env bash
# Development build: compiles the extension with CMake into build/dev and copies it next to the
# Python sources, so `PYTHONPATH=python python -m pytest` runs against the working tree without
# reinstalling. (The packaged path is `pip install .`; see README.md.)
set -euo pipefail
cd "$(dirname "$0")/.."
build_type=${BUILD_TYPE:-Release}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B build/dev "${generator[@]}" -DCMAKE_BUILD_TYPE="$build_type" \
  -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" "$@" >/dev/null
cmake --build build/dev
for ext in build/dev/_*.so; do
  cp -f "$ext" python/fastnn/
done
echo "built: $(ls python/fastnn/_*.so | xargs -n1 basename | tr '\n' ' ')"

#!/usr/bin/env bash
# Builds a wheel (CPU-only by default: FASTNN_CUDA=OFF; FASTNN_CUDA=ON for the GPU variant),
# installs it into a fresh virtual environment outside the source tree, runs
# scripts/wheel_smoke.py there (import, one training step, `python -m fastnn info`) and prints
# the wheel's size. Usage: scripts/wheel_smoke.sh [wheel-dir]   (default dist/)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
out=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
export FASTNN_CUDA=${FASTNN_CUDA:-OFF}
# A wheel is for other machines: AUTO (the source install's default) would compile the CUDA backend
# for this machine's GPU alone, or leave it out where this machine has none.
if [[ $FASTNN_CUDA != ON && $FASTNN_CUDA != OFF ]]; then
  echo "wheel_smoke.sh: FASTNN_CUDA must be ON (GPU wheel, every architecture) or OFF (CPU wheel); got '$FASTNN_CUDA'" >&2
  exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -f "$out"/fastnn-*.whl
start=$(date +%s)
python -m pip wheel --no-deps -q -w "$out" .
wheel=$(ls "$out"/fastnn-*.whl)
echo "built $(basename "$wheel") (FASTNN_CUDA=$FASTNN_CUDA) in $(( $(date +%s) - start )) s"

python -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel"
(cd "$work" && "$work/venv/bin/python" "$src/scripts/wheel_smoke.py")
echo "wheel size: $(du -k "$wheel" | cut -f1) KiB  $(basename "$wheel")"
python - "$wheel" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for i in z.infolist():
        if i.filename.endswith(".so") or ".libs/" in i.filename:
            print(f"  {i.file_size / 1024:9.0f} KiB  {i.filename}")
PY

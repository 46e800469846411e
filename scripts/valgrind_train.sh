#!/usr/bin/env bash
# A short training run (conv, batch norm, pooling, dropout, linear, SGD with momentum, a
# checkpoint save and load) under valgrind memcheck, against the normal build in python/
# (./scripts/dev_build.sh first). Prints the invalid reads/writes and definite leaks whose stack
# passes through fastnn's extension, and exits non-zero when there are any.
#
# PYTHONMALLOC=malloc lets memcheck see Python's allocations; OMP_NUM_THREADS=2 keeps the
# threaded kernels on the path under test while bounding the slowdown (~50x).
set -euo pipefail
cd "$(dirname "$0")/.."
log=${VALGRIND_LOG:-build/valgrind_train.log}
mkdir -p "$(dirname "$log")"
# The interpreter itself, not a launcher script (pyenv shims would be all valgrind sees).
interpreter=$(python -c 'import sys; print(sys.executable)')
PYTHONMALLOC=malloc OMP_NUM_THREADS=2 PYTHONPATH=python valgrind --tool=memcheck --leak-check=full \
  --show-leak-kinds=definite --num-callers=40 --log-file="$log" "$interpreter" - <<'PY'
import tempfile, numpy as np, fastnn
from fastnn import data, nn, optim
fastnn.manual_seed(0)
rng = np.random.default_rng(0)
x, y = rng.random((64, 1, 8, 8), dtype=np.float32), rng.integers(0, 4, 64)
model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Dropout(0.1), nn.Flatten(), nn.Linear(64, 4))
opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
with tempfile.TemporaryDirectory() as folder:
    ck = folder + "/ck.zip"
    fastnn.train.fit(model, nn.SoftmaxCrossEntropy(), opt, data.DataLoader(data.ArrayDataset(x, y), 16, shuffle=True),
                     2, checkpoint=ck, quiet=True)
    fastnn.restore(ck, model, opt)
print("trained")
PY
python - "$log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.split(r"\n==\d+== \n", text)
def ours(block):
    return "_cpu" in block or "fastnn" in block
invalid = [b for b in blocks if re.search(r"Invalid (read|write)", b) and ours(b)]
leaks = [b for b in blocks if "definitely lost in" in b and ours(b)]
other = [b for b in blocks if re.search(r"Invalid (read|write)|Conditional jump|uninitialised", b) and ours(b)]
summary = re.findall(r"ERROR SUMMARY: .*", text)
print(f"valgrind: {len(invalid)} invalid reads/writes and {len(leaks)} definite leaks in fastnn's code; "
      f"{len(other)} error reports through fastnn in all; whole process: {summary[-1] if summary else '?'}")
for b in (invalid + leaks)[:5]:
    print(b[:3000])
sys.exit(1 if invalid or leaks else 0)
PY

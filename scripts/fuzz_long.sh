#!/usr/bin/env bash
# Long op-fuzzing run (not in CI): every group of tests/test_fuzz_ops.py to at least 100,000
# cases in all, at the lowest CPU priority. Extra arguments go to scripts/fuzz_long.py, e.g.
#   ./scripts/fuzz_long.sh --cases 200000 --log /tmp/fuzz.jsonl
# Uses the fastnn on PYTHONPATH (the dev tree's python/ by default). docs/RELIABILITY.md has
# the figures of the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-$PWD/python}"
exec nice -n 19 python scripts/fuzz_long.py "$@"

"""How long `import fastnn` takes, in fresh interpreters: CPU time of NumPy's own import and of
what fastnn adds on top, and PyTorch's import as the peer. Medians over --runs interpreters,
alternating the libraries. (tests/test_lazy_import.py checks which modules the import loads;
the time is measured here, not asserted, since a busy machine stretches it.)

    python benchmarks/bench_import.py [--runs 15]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Prints "<numpy s> <library s>": NumPy first, so the second number is the library's own share.
_CODE = ("import sys, time; sys.path[:0] = {path!r}; t0 = time.process_time(); import numpy; "
         "t1 = time.process_time(); import {module}; t2 = time.process_time(); print(t1 - t0, t2 - t1)")


def _fastnn_path() -> list[str]:
    import fastnn

    return [str(Path(fastnn.__file__).resolve().parents[1])]


def _one(module: str, path: list[str]) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", _CODE.format(path=path, module=module)],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per library")
    args = parser.parse_args()
    libraries = {"fastnn": _fastnn_path()}
    if importlib.util.find_spec("torch") is not None:
        libraries["torch"] = []
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in libraries}
    for _ in range(args.runs):
        for name, path in libraries.items():
            times[name].append(_one(name, path))
    print(f"CPU time of the import, median of {args.runs} fresh interpreters")
    print("| library | numpy (ms) | the library on top (ms) | total (ms) |")
    print("|---|---|---|---|")
    for name, runs in times.items():
        numpy_ms = statistics.median(r[0] for r in runs) * 1e3
        own_ms = statistics.median(r[1] for r in runs) * 1e3
        total_ms = statistics.median(r[0] + r[1] for r in runs) * 1e3
        print(f"| {name} | {numpy_ms:.0f} | {own_ms:.0f} | {total_ms:.0f} |")


if __name__ == "__main__":
    main()

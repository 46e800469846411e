"""``fastnn bench ...``: the kernel micro-benchmarks of :mod:`fastnn.bench`, which parses its own
options (``fastnn bench --help``)."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from fastnn.cli.common import CLIError


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Lists ``bench`` for ``fastnn --help`` only: :func:`fastnn.cli.main` hands ``bench ...`` to
    :func:`run` before argparse sees it."""
    return sub.add_parser("bench", help="kernel micro-benchmarks (fastnn.bench; `fastnn bench --help` for its options)")


def run(argv: list[str]) -> int:
    """Hands every argument after ``bench`` to ``fastnn.bench.main`` untouched; returns its exit
    status."""
    try:
        bench = importlib.import_module("fastnn.bench")
    except ModuleNotFoundError as e:
        if e.name == "fastnn.bench":
            raise CLIError("the benchmark harness (fastnn.bench) is not part of this fastnn build") from e
        raise CLIError(f"fastnn.bench needs the module {e.name}: pip install 'fastnn[bench]'") from e
    return int(bench.main(argv) or 0)

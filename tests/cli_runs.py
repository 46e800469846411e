"""What the CLI run tests share: running in a temporary folder on the digits cut short, the
one-line error check, and reading a run's report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import fastnn


def small_digits_in(tmp_path: Path, monkeypatch, n_train: int, n_test: int) -> Iterator[Path]:
    """Runs a test in ``tmp_path`` with ``fastnn.data.digits`` cut to its first ``n_train``
    training and ``n_test`` test images, and the thread count restored afterwards (``--threads``
    changes the process-wide setting). A fixture body: ``yield from``."""
    monkeypatch.chdir(tmp_path)
    threads = fastnn.get_num_threads()
    full = fastnn.data.digits

    def small(seed: int = 0, test_fraction: float = 0.2):
        return tuple(fastnn.data.ArrayDataset(part.x[:n], part.y[:n], classes=part.classes)
                     for part, n in zip(full(seed=seed, test_fraction=test_fraction), (n_train, n_test)))

    monkeypatch.setattr(fastnn.data, "digits", small)
    yield tmp_path
    fastnn.set_num_threads(threads)


def one_line_error(capsys, *fragments: str) -> str:
    """The one stderr line of a failed command, checked to hold every fragment."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastnn: error: "), captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def report(run: str) -> dict:
    """A run folder's report.json."""
    return json.loads(Path(run, "report.json").read_text())

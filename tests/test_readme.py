"""The README's ten-line example runs as written and trains a model that clearly learned
(>= 93% on the digits test split; it prints about 96%)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import NEEDS_DIGITS

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = NEEDS_DIGITS


def test_readme_example_runs_and_learns():
    if not README.exists():
        pytest.skip("README.md is not beside the tests (installed test suite)")
    code = re.search(r"## In ten lines\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 14
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=README.parent, timeout=300)
    assert out.returncode == 0, out.stderr
    accuracy = float(out.stdout.split()[-1])
    assert accuracy >= 0.93, out.stdout


SAMPLE = re.compile(r"<!-- sample:[^\n]*-->\n(.*?)<!-- end sample -->", re.S)
_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?"


def _line_pattern(line: str) -> re.Pattern:
    """A README sample line as a pattern for a line of real output: every number may differ
    (accuracies, times, dates), runs of spaces may differ in width (column padding), and the
    per-epoch "(best)" marker is optional; all the words and punctuation must be as printed,
    but for "thread" against "threads" (a one-core machine runs 1 thread)."""
    line = re.sub(r"\s+\(best\)$", "", line)
    pieces = []
    for token in re.split(rf"({_NUMBER}| +)", line):
        if not token:
            continue
        if re.fullmatch(_NUMBER, token):
            pieces.append(_NUMBER)
        elif token.isspace():
            pieces.append(r"\s+")
        else:
            pieces.append(re.sub(r"threads?\b", "threads?", re.escape(token)))
    return re.compile("".join(pieces) + r"(\s+\(best\))?")


def readme_sample() -> list[str]:
    """The README's sample output lines, without the 4-space indent."""
    block = SAMPLE.search(README.read_text())
    assert block, "README.md has no <!-- sample: ... --> block"
    lines = block.group(1).splitlines()
    assert all(line.startswith("    ") for line in lines), "the sample is an indented block"
    return [line[4:] for line in lines]


def test_readme_sample_is_the_cli_output(tmp_path, monkeypatch, capsys):
    """Issue 17 item 9: the README's sample output is what `python -m fastnn train` prints.
    Each sample line (bar "..." for elided lines) must match a line of a real run's output, in
    order, numbers aside; the sizes in the first line must be exact; and the sample must be
    from a run of the default settings, which reaches at least 90% on the test set."""
    if not README.exists():
        pytest.skip("README.md is not beside the tests (installed test suite)")
    from fastnn.cli import main

    sample = readme_sample()
    assert "..." not in " ".join(line for line in sample if line != "..."), "elide whole lines only"
    monkeypatch.chdir(tmp_path)
    # The default run, cut to 2 epochs: the lines have the same form.
    assert main(["train", "--epochs", "2"]) == 0
    real = capsys.readouterr().out.splitlines()
    # Each sample line has the form of a real line, and the forms come in the same order (the
    # short run has fewer epoch lines, so every epoch line of the sample matches its first).
    first_match = []
    for line in sample:
        if line == "...":
            continue
        # The run folder's file list depends on matplotlib (no pictures without it): its form only.
        pattern = re.compile(r"run folder: \S+\s+\(checkpoint\.fastnn, .*\)") if line.startswith("run folder:") \
            else _line_pattern(line)
        found = [i for i, text in enumerate(real) if pattern.fullmatch(text)]
        assert found, f"README sample line has no counterpart in the CLI's output: {line!r}\n" + "\n".join(real)
        first_match.append(found[0])
    assert first_match == sorted(first_match), "the README sample's lines are out of the CLI's order"
    # Fixed facts of the default run: the split, the model's size and the schedule.
    first = re.sub(r"\d+ epochs?", "N epochs", re.sub(r"\d+ threads?", "T threads", sample[0]))
    assert first == re.sub(r"\d+ epochs?", "N epochs", re.sub(r"\d+ threads?", "T threads", real[0]))
    from fastnn import recipes

    epochs = recipes.dataset_recipe("digits").epochs
    assert re.search(rf": {epochs} epochs, ", sample[0]), f"the sample is of the default {epochs}-epoch run"
    accuracy = float(re.search(r"^test accuracy ([\d.]+)%", "\n".join(sample), re.M).group(1))
    assert accuracy >= 90


def test_ci_runs_the_readme_commands():
    """CI runs the README's commands as they stand in the README (issue 14): `.ci/run` reads
    them from the "Two commands" section, and what it reads is every command line of that
    section's bash blocks, in order: the main job with the digits, progress and plots extras
    (so the first run draws its pictures), then the tests."""
    ci = README.parent / ".ci" / "run"
    if not README.exists() or not ci.exists():
        pytest.skip("README.md and .ci/run are not beside the tests (installed test suite)")
    section = re.search(r"^## Two commands\n(.*?)^## ", README.read_text(), re.S | re.M).group(1)
    expected = [line for block in re.findall(r"```bash\n(.*?)```", section, re.S)
                for line in block.splitlines() if line.strip()]
    out = subprocess.run(["bash", str(ci), "--print-commands"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == expected
    main_job = expected[0]
    assert re.fullmatch(r'pip install "\.\[([a-z,]+)\]" && python -m fastnn train', main_job), main_job
    assert {"digits", "progress", "plots"} <= set(re.search(r"\[([a-z,]+)\]", main_job).group(1).split(","))
    assert expected[-1].endswith("python -m pytest")

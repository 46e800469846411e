"""Crash safety: SIGKILL in the middle of fastnn.save never leaves an unreadable checkpoint, and
a training run killed at random points and resumed each time ends bitwise where an unbroken
run ends (same seed, same thread count)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastnn

HERE = Path(__file__).resolve().parent
WORKER = str(HERE / "crash_worker.py")
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")


def _env() -> dict:
    # A fixed thread count: results are bitwise reproducible for a given one.
    # Children import the same fastnn as this process (installed, or a dev tree on PYTHONPATH).
    python = str(Path(fastnn.__file__).resolve().parents[1])
    return dict(os.environ, OMP_NUM_THREADS="2", PYTHONPATH=os.pathsep.join([python, os.environ.get("PYTHONPATH", "")]))


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WORKER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())


def _kill(proc: subprocess.Popen) -> bool:
    """SIGKILLs ``proc``; True when it was still running (the kill interrupted it)."""
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return alive


def test_sigkill_during_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    checkpoint = tmp_path / "ck.zip"
    chooser = random.Random(7)
    kills = 0
    for attempt in range(8):
        proc = _start("save-loop", str(checkpoint))
        assert proc.stdout.readline().startswith("saved"), proc.stderr.read()
        time.sleep(chooser.uniform(0.0, 0.25))  # lands anywhere in a save (a few MB each)
        kills += _kill(proc)
        ck = fastnn.load(checkpoint)  # must never raise
        step = ck["step"]
        for name, array in ck["model"].items():
            assert np.all(array == step), f"attempt {attempt}: {name} mixes saves (expected all {step})"
    assert kills == 8
    print(f"\nsave killed {kills} times; the previous checkpoint loaded every time")


def test_training_killed_and_resumed_matches_an_unbroken_run(tmp_path):
    straight = tmp_path / "straight.npz"
    subprocess.run([sys.executable, WORKER, "train", str(tmp_path / "straight.zip"), str(straight)], check=True,
                   env=_env(), capture_output=True)

    checkpoint, resumed = tmp_path / "resumed.zip", tmp_path / "resumed.npz"
    chooser = random.Random(11)
    kills = 0
    for _ in range(5):
        proc = _start("train", str(checkpoint), str(resumed))
        # Kill after a random number of finished epochs, a random moment into the next one (or into
        # its checkpoint save).
        for _ in range(chooser.randint(1, 2)):
            if not proc.stdout.readline():
                break
        time.sleep(chooser.uniform(0.0, 0.04))
        kills += _kill(proc)
    finish = subprocess.run([sys.executable, WORKER, "train", str(checkpoint), str(resumed)], env=_env(),
                            capture_output=True, text=True)
    assert finish.returncode == 0, finish.stderr
    assert kills >= 3, "the run finished before most kills: make it longer"
    want, got = np.load(straight), np.load(resumed)
    assert sorted(want.files) == sorted(got.files)
    for name in want.files:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    print(f"\ntraining killed {kills} times and resumed; final weights bitwise equal to the unbroken run")

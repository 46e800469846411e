"""Launched by tests/test_distributed_mpi.py as ``mpiexec -n 2 python tests/mpi/cli_interrupted.py
FLAGS...``: ``fastnn train --distributed FLAGS --out broken``, interrupted on every rank (as Ctrl-C
under mpiexec is) right after its first epoch's checkpoint. The test then resumes it with
``fastnn train --resume broken/checkpoint.fastnn --distributed``."""

from __future__ import annotations

import sys

import fastnn.train
from fastnn.cli import main

unpatched_fit = fastnn.train.fit


def ctrl_c_after_the_first_epoch(epoch: int, record: dict) -> None:
    if epoch == 1:  # callbacks run after the epoch's checkpoint is written
        raise KeyboardInterrupt


def interrupted_fit(*args, **kwargs):
    return unpatched_fit(*args, callbacks=[ctrl_c_after_the_first_epoch], **kwargs)


fastnn.train.fit = interrupted_fit
sys.exit(main(["train", *sys.argv[1:], "--distributed", "--out", "broken"]))

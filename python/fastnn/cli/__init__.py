"""The command line: ``python -m fastnn train | eval | info | bench | predict | export`` (also installed as ``fastnn``).

``train`` with no arguments trains the default model on scikit-learn's bundled digits and
writes a run folder (checkpoint, report.json, curves.png, confusion.png). Errors a user can
cause (arguments, data folders, verification, checkpoints) print one line on stderr and exit
with status 1 (2 for bad arguments), without a traceback.

One module per command (:mod:`~fastnn.cli.train`, :mod:`~fastnn.cli.eval`,
:mod:`~fastnn.cli.info`, :mod:`~fastnn.cli.bench`, :mod:`~fastnn.cli.export`), each adding its own options to the parser;
:mod:`~fastnn.cli.common` holds what they share. The datasets, models, optimisers and schedules
are built by name through :mod:`fastnn.recipes`, which scripts can call too.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import fastnn
from fastnn.checkpoint import CheckpointError
from fastnn.cli import bench, eval, info, train
from fastnn.cli import predict
from fastnn.cli import export
from fastnn.cli.common import CLIError, Parser, fail
from fastnn.data.files import DatasetError
from fastnn.recipes import RecipeError
from fastnn.train import NonFiniteLossError


def build_parser() -> argparse.ArgumentParser:
    """The ``fastnn`` argument parser, one subcommand per command module."""
    parser = Parser(prog="fastnn", description="Train and evaluate image classifiers on fastnn's C++ kernels.")
    parser.add_argument("--version", action="version", version=f"fastnn {fastnn.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,info,bench,predict,export}", parser_class=Parser)
    for command in (train, eval, info, bench, predict, export):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["bench"]:
            return bench.run(argv[1:])
        args = build_parser().parse_args(argv)
        if getattr(args, "handler", None) is None:
            raise CLIError("fastnn: choose a command: train, eval, info, bench, predict or export (see fastnn --help)", code=2)
        args.argv = argv[1:]
        return args.handler(args)
    except CLIError as e:
        return fail(str(e), e.code, e.kind)
    except DatasetError as e:  # the loaders' advice is for Python callers: name the flag instead
        return fail(str(e).replace("pass download=True", "add --download"), 1)
    except (CheckpointError, NonFiniteLossError, RecipeError, FileNotFoundError, PermissionError) as e:
        return fail(str(e), 1)
    except KeyboardInterrupt:  # `train` says what it saved (cli.train); elsewhere nothing was
        return fail("stopped before anything was written", 130, "interrupted")


__all__ = ["CLIError", "build_parser", "main"]

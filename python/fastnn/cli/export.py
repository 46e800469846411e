"""``fastnn export CHECKPOINT OUTPUT``: a run's model as an ONNX file that takes images as
:mod:`fastnn.data` yields them (float32 NCHW in [0, 1]) and gives the run's logits.

The model is rebuilt from the checkpoint's run configuration as ``eval`` rebuilds it (by its
task), and the run's image preparation (:func:`fastnn.cli.predict.preprocessing`: the size, the
channels and the per-channel mean and std that ``train`` and ``eval`` apply to every batch)
fixes the input shape and goes inside the graph, so a deployer feeds pixels / 255. The class
names and the input contract go into the model's metadata (see :mod:`fastnn.onnx`). Classifiers
(``--task multiclass`` and ``binary``) give ``logits``; the embedding networks of
``verification`` and ``identification`` give ``embedding`` (compared by cosine similarity). The
``attributes`` task's multi-head model has one output per attribute and is not exported.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from fastnn.cli import tasks
from fastnn.cli.common import CLIError, int_at_least
from fastnn.cli.predict import EMBEDDING_TASKS, preprocessing

# The tasks whose model has one output array (a classifier's logits, an embedding).
EXPORTED_TASKS = ("multiclass", "binary", *EMBEDDING_TASKS)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Adds ``export`` and its options to the subcommands ``sub``."""
    ex = sub.add_parser("export", help="write a saved model as an ONNX file",
                        description="Write a checkpoint's model as ONNX (input float32 NCHW in [0, 1], the run's "
                                    "normalisation inside the graph, class names in the metadata). Needs the onnx "
                                    'package: pip install "fastnn[onnx]".')
    ex.add_argument("checkpoint", help="a run's checkpoint (runs/<run>/checkpoint.fastnn)")
    ex.add_argument("output", help="the ONNX file to write (e.g. model.onnx); replaced if it exists")
    ex.add_argument("--opset", type=int_at_least(1), default=None,
                    help="ONNX opset version (default: fastnn.onnx.DEFAULT_OPSET, 17)")
    ex.set_defaults(handler=run)
    return ex


def run(args: argparse.Namespace) -> int:
    """Runs ``fastnn export``; returns the exit status."""
    if importlib.util.find_spec("onnx") is None:
        raise CLIError('export needs the onnx package, which is not installed: pip install "fastnn[onnx]"')
    import fastnn.onnx

    if not Path(args.checkpoint).is_file():
        raise CLIError(f"CHECKPOINT {args.checkpoint}: no such file (give a run's checkpoint, e.g. "
                       "runs/<run>/checkpoint.fastnn)")
    output = Path(args.output)
    if output.is_dir():
        raise CLIError(f"OUTPUT {args.output} is a folder; give the ONNX file to write, e.g. {output / 'model.onnx'}")
    ck = fastnn.load(args.checkpoint)
    config = ck.get("config")
    if not isinstance(config, dict):
        raise CLIError(f"CHECKPOINT {args.checkpoint} holds no run configuration (it was not written by `fastnn train`)")
    task = config.get("task") or "multiclass"
    if task not in EXPORTED_TASKS:
        raise CLIError(f"CHECKPOINT {args.checkpoint}: a --task {task} model has no ONNX export (its output is one "
                       f"array per head); export handles the tasks {', '.join(EXPORTED_TASKS)}")
    model = tasks.task_for(config).model(config)
    fastnn.restore(ck, model, rng=False)
    prep = preprocessing(config)
    c, size = prep["channels"], prep["image_size"]
    embedding = task in EMBEDDING_TASKS
    classes = None if embedding else prep.get("classes")
    metadata = {"model": config["model"], "dataset": config["dataset"], "task": task,
                **({"classes": list(classes)} if classes else {}),
                **({"epoch": ck["epoch"]} if isinstance(ck.get("epoch"), int) else {})}
    if embedding:
        metadata["similarity"] = "cosine of the L2-normalised embeddings"
        if config.get("verification_threshold") is not None:
            metadata["same_identity_threshold"] = config["verification_threshold"]
    opset = fastnn.onnx.DEFAULT_OPSET if args.opset is None else args.opset
    try:
        fastnn.onnx.export(model, output, (c, size, size), opset=opset, output_name="embedding" if embedding else "logits",
                           normalize=(prep["normalize_mean"], prep["normalize_std"]), metadata=metadata)
    except fastnn.onnx.ExportError as e:
        raise CLIError(str(e).replace("argument 'opset'", "--opset")) from None
    except ImportError as e:  # onnx present but unusable (a broken install)
        raise CLIError(str(e)) from None
    print(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB, ONNX opset {opset}): {config['model']} trained on "
          f"{config['dataset']} (task {task})")
    print(f"input 'input': float32 NCHW (batch, {c}, {size}, {size}) in [0, 1] (pixels / 255); the run's "
          "normalisation is inside the graph")
    if embedding:
        print(f"output 'embedding': (batch, {config['embedding_dim']}); compare two images by the cosine of their "
              "L2-normalised embeddings")
    else:
        print(f"output 'logits': (batch, {config['num_classes']}); softmax gives the class probabilities"
              + (f"; classes {', '.join(map(str, classes))}" if classes and len(classes) <= 20 else ""))
    return 0

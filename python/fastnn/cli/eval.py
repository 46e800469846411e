"""``fastnn eval CHECKPOINT``: a saved model scored again on its test set, by the task it was trained
for (multiclass: accuracy, top-k accuracy and the confusion matrix; the other tasks: their own
scores, as the training run reported them)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import fastnn
from fastnn import data, metrics, recipes, report
from fastnn.cli import tasks
from fastnn.cli.common import CLIError, device, image_shape, int_at_least, load_data, require_device


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Adds ``eval`` and its options to the subcommands ``sub``."""
    ev = sub.add_parser("eval", help="evaluate a saved model on a test set",
                        description="Accuracy, top-k accuracy and confusion matrix of a checkpoint on a test set.")
    ev.add_argument("checkpoint")
    ev.add_argument("--dataset", choices=list(recipes.DATASET_NAMES),
                    help="default: the dataset the model was trained on")
    ev.add_argument("--data-dir", help="folder with the dataset files (default: the folder the model was trained "
                                       "from, as saved in the checkpoint)")
    ev.add_argument("--download", action="store_true")
    ev.add_argument("--batch-size", type=int_at_least(1), default=256)
    ev.add_argument("--top-k", type=int_at_least(1), default=3)
    ev.add_argument("--threads", type=int_at_least(1))
    ev.add_argument("--device", type=device, default="cpu", help="cpu (default), cuda or cuda:<index>")
    ev.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ev.set_defaults(handler=run)
    return ev


def run(args: argparse.Namespace) -> int:
    """Runs ``fastnn eval``; returns the exit status."""
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    require_device(args.device)
    ck = fastnn.load(args.checkpoint)
    config = ck.get("config")
    if not isinstance(config, dict):
        raise CLIError(f"{args.checkpoint} holds no run configuration (it was not written by `fastnn train`)")
    dataset = args.dataset or config["dataset"]
    # The run's own data folder, as --resume uses it, unless --data-dir names another (or
    # --dataset another dataset, whose files live elsewhere).
    saved_dir = config.get("data_dir") if dataset == config["dataset"] else None
    config = dict(config, dataset=dataset, data_dir=args.data_dir or saved_dir)
    task = tasks.task_for(config)
    train_set, test_set = load_data(config, args.download)
    train_set, test_set = task.select(train_set, test_set, config)
    shape = image_shape(config)
    described = task.describe(test_set)
    if test_set.x.shape[1:] != shape or described["num_classes"] != config["num_classes"]:
        raise CLIError(f"{config['dataset']} has {described['num_classes']} classes of {test_set.x.shape[1:]} images "
                       f"(task {task.name}); the checkpoint's model takes {shape} and predicts {config['num_classes']}")
    model, loss = task.model(config), task.loss(config)
    trained_loss = {"loss": loss} if ck.get("loss") is not None else {}
    fastnn.restore(ck, model, rng=False, **trained_loss)
    loader = data.DataLoader(test_set, args.batch_size,
                             transform=data.Normalize(config["normalize_mean"], config["normalize_std"]),
                             device=args.device)
    result = fastnn.train.evaluate(model, loader, loss, k=args.top_k, device=args.device)
    scored = task.score(model, loss, test_set, config, args.device, args.batch_size)
    what = f"{config['model']} on {config['dataset']} test set ({recipes.plural(result['images'], 'image')})"
    if result["accuracy"] is not None and task.name == "multiclass":
        print(f"{what}: accuracy {100 * result['accuracy']:.2f}%   top-{args.top_k} "
              f"{100 * result['top_k_accuracy']:.2f}%   loss {result['loss']:.4f}")
    else:
        print(f"{what}, task {task.name}: loss {result['loss']:.4f}")
    if scored is not None:
        print(*scored.lines, sep="\n")
    if task.name in ("multiclass", "binary") and len(config["classes"]) <= 20:
        print(report.format_confusion(result["confusion_matrix"], config["classes"]))
    if args.json:
        confusion = result["confusion_matrix"]
        report.write_json(Path(args.json), {"checkpoint": str(args.checkpoint), "dataset": config["dataset"],
                                            "task": task.name,
                                            **{k: v for k, v in result.items() if k != "seconds"},
                                            "per_class": metrics.precision_recall_f1(confusion)
                                            if confusion is not None else None,
                                            **({scored.key: scored.report} if scored is not None else {})})
    return 0

"""What every task provides to ``fastnn train`` and ``fastnn eval`` (see the package docstring),
and the helpers the tasks share: running a model over a dataset, splitting flag lists."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fastnn import data, nn
from fastnn._device import to_device
from fastnn.cli.common import CLIError, build_model


@dataclass
class TaskResult:
    """A task's end-of-run score: ``report`` goes into report.json under ``final.<key>``,
    ``lines`` are printed, ``pictures`` maps a file name to a function that draws it at a path
    (returning False without matplotlib)."""

    key: str
    report: dict[str, Any]
    lines: list[str]
    pictures: dict[str, Callable[[Path], bool]] = field(default_factory=dict)


class Task:
    """The multiclass behaviour; other tasks override what differs."""

    name = "multiclass"
    monitors = ("val_loss", "val_acc")
    """The --monitor values that make sense (a task without class scores has no val_acc)."""

    def check(self, config: dict[str, Any]) -> None:
        """CLIError naming the flag when the run's options do not fit the task."""
        if config.get("monitor") not in (None, *self.monitors):
            raise CLIError(f"--monitor {config['monitor']} does not apply to --task {self.name} "
                           f"(its models have no single class per image); use {' or '.join(self.monitors)}")

    def select(self, train: data.ArrayDataset, test: data.ArrayDataset,
               config: dict[str, Any]) -> tuple[data.ArrayDataset, data.ArrayDataset]:
        """The (train, test) images and class labels the run trains and is tested on."""
        return train, test

    def split(self, train: Any, fraction: float, seed: int) -> tuple[Any, Any]:
        """(rest, validation): ``fraction`` of the training images held out, stratified by class."""
        return data.stratified_split(train, fraction, seed=seed)

    def describe(self, train: Any) -> dict[str, Any]:
        """What the run's configuration records of the training set's labels."""
        return {"num_classes": train.num_classes, "classes": list(train.classes)}

    def model(self, config: dict[str, Any]) -> nn.Module:
        return build_model(config)

    def loss(self, config: dict[str, Any]) -> nn.Module:
        return nn.SoftmaxCrossEntropy()

    def score(self, model: nn.Module, loss: nn.Module, test: Any, config: dict[str, Any], device: str,
              batch_size: int) -> TaskResult | None:
        """The task's own end-of-run score (None: the multiclass accuracy and confusion matrix
        say it all)."""
        return None


def run_model(model: nn.Module, dataset: Any, config: dict[str, Any], device: str, batch_size: int) -> Any:
    """``model``'s eval-mode outputs over every image of ``dataset`` (normalised as the run
    trains), on the host: one array, or a dict of arrays for a multi-head model."""
    loader = data.DataLoader(x=dataset.x, y=np.zeros(len(dataset), dtype=np.int64), batch_size=batch_size,
                             transform=data.Normalize(config["normalize_mean"], config["normalize_std"]),
                             device=device)
    was_training = model.training
    model.eval()
    outputs: list[Any] = []
    try:
        for x, _ in loader:
            out = model(x)
            outputs.append({k: to_device(v, "cpu") for k, v in out.items()} if isinstance(out, dict)
                           else to_device(out, "cpu"))
    finally:
        model.train(was_training)
    if outputs and isinstance(outputs[0], dict):
        return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
    return np.concatenate(outputs)


def class_list(text: str) -> list[str]:
    """An argparse type: a comma-separated list of class names or ids (``--positive 1,3,cat``)."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected class names or ids separated by commas, got {text!r}")
    return items


def as_class_refs(items: list[str] | None) -> list[int | str] | None:
    """Flag items as class ids where they are integers, else names (as fastnn.tasks takes them)."""
    if items is None:
        return None
    return [int(i) if i.lstrip("-").isdigit() else i for i in items]


def flag_error(error: ValueError) -> CLIError:
    """A fastnn.tasks ValueError (which names its flag) as a one-line CLIError, without the
    Python function's prefix."""
    text = str(error)
    if text.startswith("fastnn.") and ": " in text:
        text = text.split(": ", 1)[1]
    return CLIError(text)


def percent(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"
